// qtls-smtpd's parts for the daemon skeleton (daemon/skeleton.h): what sessions touch, built
// before the skeleton so it outlives the event loop, and the service on the loop (the
// listeners).
#pragma once

#include <asio/io_context.hpp>
#include <memory>
#include <set>
#include <string>

#include "admin/event_hub.h"
#include "daemon/skeleton.h"
#include "listener.h"
#include "metrics.h"
#include "session_registry.h"
#include "smtpd_config.h"
#include "smtpd_flags.h"
#include "stats/metrics.h"

namespace qtls::agent {

// What sessions use. At a shutdown that cut sessions off, the io_context's destructor destroys
// their frames, which still touch these: they are built before the loop.
struct SmtpdState {
  explicit SmtpdState(const SmtpdFlags& flags);
  // The skeleton's parts: the compiler (loader, open-relay refusal, activation), metrics,
  // ResolvePolicy.
  daemon::DaemonParts parts();

  const SmtpdFlags& flags;
  std::set<std::string> cipherVariants;  // the listeners' cipher overrides, compiled per policy
  SmtpdConfigStore store;
  SmtpdConfigStore candidate;  // a fleet candidate evaluated report-only; empty when none
  SessionRegistry sessionRegistry;
  stats::Registry registry;
  AgentMetrics metrics{registry};
  admin::EventHub events;  // WatchSessions

 private:
  absl::Status activate(uint64_t gen, const std::string& digest, std::shared_ptr<SmtpdConfig> cfg);
};

class SmtpdService final : public daemon::Service {
 public:
  SmtpdService(asio::io_context& io, SmtpdState& state);

  absl::Status bind() override;  // systemd's sockets, or --listen (port 25: as root)
  absl::Status accept() override;
  std::string startedLine() const override;
  void stopAccepting() override { listeners_.stop(); }
  void cutOff() override { listeners_.cutOff(); }
  int inFlight() const override { return listeners_.active(); }
  std::string inFlightWhat() const override { return "sessions open"; }
  std::string status() const override;

 private:
  SmtpdState& st_;
  Listeners listeners_;
};

}  // namespace qtls::agent
