// qtlsctl fleet bundle | target | status, and what `rollout` shares with them: the etcd
// connection, the key layout, a view of every node (docs/fleet.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli.h"
#include "client.h"
#include "fleet/etcd_client.h"
#include "fleet/layout.h"
#include "qtls/v1/fleet.pb.h"

namespace qtls::ctl {

struct FleetContext {
  std::string endpoints, ca, cert, key;
  fleet::Layout layout{"/qtls"};
  bool json = false;
  std::string who;      // the operator, for bundles and rollout history
  fleet::Etcd& etcd();  // connects on first use; exits with the reason when it cannot

 private:
  std::unique_ptr<fleet::Etcd> etcd_;
};

// A node as etcd knows it: the target it was given and the status it wrote (if any).
struct NodeView {
  std::string node;
  bool hasTarget = false, hasStatus = false;
  qtls::v1::FleetTarget target;
  qtls::v1::FleetStatus status;
};
absl::StatusOr<std::vector<NodeView>> fleetView(FleetContext& f, const std::string& component);

// The exit code for a status (docs/admin-api.md, "qtlsctl"); failed() prints it first.
int exitFor(const absl::Status& s);
int failed(const absl::Status& s);
std::string shortDigest(const std::string& digest);  // "sha256:0123456789ab"

// Stores the policy in DIR (control/ layout) as a bundle of `component`; returns its digest.
absl::StatusOr<std::string> storeBundle(FleetContext& f, const std::string& component,
                                        const std::string& dir);

// `qtlsctl fleet ...` and `qtlsctl rollout ...` (rollout = true): the words after the command.
// `admin`: the global options, for the commands that also ask a daemon (fleet adopt).
int fleetCommand(Args& a, const Options& admin, bool rollout);

}  // namespace qtls::ctl
