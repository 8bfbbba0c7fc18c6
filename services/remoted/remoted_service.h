// qtls-remoted's parts for the daemon skeleton (daemon/skeleton.h): what deliveries touch,
// built before the skeleton so it outlives the event loop, and the service on the loop (the
// shim socket's intake, the resolver, the local addresses).
#pragma once

#include <asio/io_context.hpp>
#include <memory>
#include <mutex>
#include <string>

#include "admin/event_hub.h"
#include "conn_cache.h"
#include "conn_limits.h"
#include "daemon/skeleton.h"
#include "dead_hosts.h"
#include "intake.h"
#include "metrics.h"
#include "remote_config.h"
#include "remoted_flags.h"
#include "resolver.h"
#include "stats/metrics.h"
#include "targets.h"
#include "tls/session_cache.h"

namespace qtls::remoted {

// What deliveries use. When the stop drain cuts deliveries off, the io_context's destructor
// destroys their frames, which still touch these: they are built before the loop.
struct RemotedState {
  explicit RemotedState(const RemotedFlags& flags);
  // The skeleton's parts: the compiler (loader and activation), metrics, ResolvePolicy.
  daemon::DaemonParts parts();

  const RemotedFlags& flags;
  ConfigStore store;
  ConfigStore candidate;  // a fleet candidate evaluated report-only; empty when none
  stats::Registry registry;
  RemoteMetrics metrics{registry};
  admin::EventHub events;  // WatchSessions
  ConnCache connCache;
  ConnLimits connLimits;
  DeadHosts deadHosts{&metrics};
  tls::ClientSessionCache tlsSessions;

 private:
  absl::Status activate(uint64_t gen, const std::string& digest, const admin::Items& items,
                        std::shared_ptr<RemoteConfig> cfg);
};

class RemotedService final : public daemon::Service {
 public:
  // The resolver is made after the io_context and goes before it: the answers it still owes
  // at shutdown are posted to a live io_context, whose destructor then drops them.
  RemotedService(asio::io_context& io, RemotedState& state, std::unique_ptr<Resolver> resolver);

  absl::Status accept() override;
  std::string startedLine() const override;
  void reloaded() override;  // the local addresses again
  void stopAccepting() override;
  void cutOff() override { intake_.cutOff(); }
  int inFlight() const override;
  std::string inFlightWhat() const override { return "deliveries in flight"; }
  std::string status() const override;

 private:
  DeliveryDeps deps();

  asio::io_context& io_;
  RemotedState& st_;
  std::unique_ptr<Resolver> resolver_;
  std::mutex ipmeMu_;
  std::shared_ptr<const IpMe> ipme_;  // guarded by ipmeMu_
  Intake intake_;
};

}  // namespace qtls::remoted
