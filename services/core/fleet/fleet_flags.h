// The fleet flags both daemons take, parsed in one place. Without --fleet-etcd a daemon
// behaves exactly as without the fleet.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>

#include "daemon/privileges.h"
#include "fleet/node.h"
#include "stats/config_metrics.h"
#include "util/flags.h"
#include "util/text.h"

namespace qtls::fleet {

struct FleetFlags {
  std::string etcd, ca, cert, key, prefix = "/qtls", node;
  int leaseTtl = 10;
};

inline constexpr char kFleetUsage[] =
    "  --fleet-etcd URLS       etcd endpoints (https://host:2379,...): take the policy from\n"
    "                          the fleet (docs/fleet.md); off by default\n"
    "  --fleet-ca FILE         CA of the etcd servers\n"
    "  --fleet-cert FILE       this node's etcd client certificate\n"
    "  --fleet-key FILE        its key\n"
    "  --fleet-prefix P        key prefix in etcd (default /qtls)\n"
    "  --fleet-node NAME       this node's name in the fleet (default: the host name)\n"
    "  --fleet-lease-ttl N     seconds a silent node stays listed (default 10)\n";

inline bool readFleetFlag(FlagReader& f, FleetFlags& a) {
  const std::string& n = f.name();
  if (n == "--fleet-etcd")
    a.etcd = f.value();
  else if (n == "--fleet-ca")
    a.ca = f.value();
  else if (n == "--fleet-cert")
    a.cert = f.value();
  else if (n == "--fleet-key")
    a.key = f.value();
  else if (n == "--fleet-prefix")
    a.prefix = f.value();
  else if (n == "--fleet-node")
    a.node = f.value();
  else if (n == "--fleet-lease-ttl")
    a.leaseTtl = std::atoi(f.value().c_str());
  else
    return false;
  return true;
}

// The node for `store`, or nullptr without --fleet-etcd; it keeps `metrics`'
// qtls_fleet_connected up to date. Not started. `etcd`: the options parseEtcdOptions read.
inline absl::StatusOr<std::unique_ptr<FleetNode>> makeNode(const FleetFlags& a,
                                                           const EtcdOptions& etcd,
                                                           admin::PolicyStore& store,
                                                           stats::ConfigMetrics& metrics) {
  if (a.etcd.empty()) return std::unique_ptr<FleetNode>();
  NodeOptions o;
  o.etcd = etcd;
  o.prefix = a.prefix;
  o.node = a.node;
  if (o.node.empty()) {
    char host[256] = "";
    ::gethostname(host, sizeof host - 1);
    o.node = host;
  }
  if (!validNodeName(o.node))
    return absl::InvalidArgumentError(
        text::cat("--fleet-node: \"", o.node, "\" is not a valid host name"));
  if (a.leaseTtl < 2 || a.leaseTtl > 3600)
    return absl::InvalidArgumentError("--fleet-lease-ttl: 2 to 3600 seconds");
  o.component = componentOf(store.schema().daemon);
  o.leaseTtlSeconds = a.leaseTtl;
  o.version = QTLS_VERSION;
  auto node = std::make_unique<FleetNode>(o, store);
  metrics.fleetConnected().set(0);
  node->setObserver(
      [&metrics](const NodeState& st) { metrics.fleetConnected().set(st.connected ? 1 : 0); });
  return node;
}

// Start-up as both daemons do it: the state directory given to `user`, the etcd client's TLS
// files read as started, then the policy store opened and the node made as that user, as
// every later reload and apply is (daemon/privileges.h). The node, or nullptr without
// --fleet-etcd.
inline absl::StatusOr<std::unique_ptr<FleetNode>> openAsServiceUser(const std::string& user,
                                                                    const std::string& stateDir,
                                                                    const FleetFlags& a,
                                                                    admin::PolicyStore& store,
                                                                    stats::ConfigMetrics& metrics) {
  if (auto s = daemon::adoptStateDir(user, stateDir); !s.ok()) return s;
  // The etcd client key first, as the daemon was started (root under systemd): it may be
  // readable by root alone. The daemon keeps the PEM texts in memory from here on.
  EtcdOptions etcd;
  if (!a.etcd.empty()) {
    auto parsed = parseEtcdOptions(a.etcd, a.ca, a.cert, a.key);
    if (!parsed.ok()) return parsed.status();
    etcd = std::move(*parsed);
  }
  std::unique_ptr<FleetNode> node;
  auto s = daemon::asServiceUser(user, [&]() -> absl::Status {
    if (auto s = store.open(); !s.ok()) return s;
    auto made = makeNode(a, etcd, store, metrics);
    if (!made.ok()) return made.status();
    node = std::move(*made);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return node;
}

}  // namespace qtls::fleet
