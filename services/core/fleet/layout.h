// Where the fleet's state lives in etcd (docs/fleet.md, "Key layout"), and the two things
// every party does with it: store and fetch a policy bundle, and read and write the JSON
// values of proto/qtls/v1/fleet.proto. The one place that names a key.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "admin/policy_store.h"
#include "fleet/component.h"
#include "fleet/etcd_client.h"

namespace google::protobuf {
class Message;
}

namespace qtls::fleet {

// Node names go into keys: host-name rules (util/host_name.h).
bool validNodeName(const std::string& node);

class Layout {
 public:
  explicit Layout(std::string prefix);  // "/qtls"; a trailing '/' is dropped
  const std::string& prefix() const { return prefix_; }

  std::string bundle(const std::string& component, const std::string& digest) const;
  std::string bundleChunk(const std::string& component, const std::string& digest,
                          unsigned index) const;
  // What a node is told: <prefix>/nodes/<component>/<node>/target and .../candidate, under
  // one prefix so that a node watches a single range.
  std::string node(const std::string& component, const std::string& node) const;  // ends in '/'
  std::string nodes(const std::string& component) const;  // prefix of every node's keys
  std::string target(const std::string& component, const std::string& node) const;
  std::string candidate(const std::string& component, const std::string& node) const;
  std::string status(const std::string& component, const std::string& node) const;
  std::string statuses(const std::string& component) const;
  std::string bundles(const std::string& component) const;  // prefix of every bundle's keys
  std::string rollout(const std::string& component) const;
  // A finished rollout, kept when the next one starts: <prefix>/history/<component>/<id>.
  std::string finishedRollout(const std::string& component, const std::string& id) const;
  std::string finishedRollouts(const std::string& component) const;  // their prefix
  std::string lock(const std::string& component) const;
  // The node a key under nodes() or statuses() belongs to.
  std::string nodeOf(const std::string& component, const std::string& key) const;

 private:
  std::string prefix_;
};

// Stores a policy as a bundle (chunks, then the manifest); a bundle already there is left
// as it is (bundles are immutable, named by their digest). Returns the digest.
absl::StatusOr<std::string> putBundle(Etcd& etcd, const Layout& layout,
                                      const std::string& component, const admin::Items& items,
                                      const std::string& createdBy);
// Fetches and checks a bundle: NOT_FOUND if its manifest is absent, DATA_LOSS if the chunks do
// not add up to the digest it is named by.
absl::StatusOr<admin::Items> getBundle(Etcd& etcd, const Layout& layout,
                                       const std::string& component, const std::string& digest);

std::string toJson(const google::protobuf::Message& m);
absl::Status fromJson(const std::string& json, google::protobuf::Message* m,
                      const std::string& what);

}  // namespace qtls::fleet
