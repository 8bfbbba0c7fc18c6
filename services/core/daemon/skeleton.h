// One start-up, run and shutdown for both daemons (the phases of Envoy's InstanceImpl). The
// skeleton owns the objects the daemons share, declared in the order they are built and torn
// down in reverse: policy store, fleet node, event loop and signals, the daemon's service,
// /metrics, admin API, control-file watch. Each daemon supplies its parts: its flags, its
// configuration compiler, what work on the loop touches (built before the skeleton, so it
// outlives the loop: the loop's destructor destroys the coroutine frames that still use it),
// and a Service that runs on the loop.
//
// Start-up, in this order for both daemons:
//   init:  the service user checked; the policy store opened and the fleet node made as that
//          user (every later reload and apply is); the event loop, catching signals from here.
//   run:   the service binds what needs the start-up user; /metrics; the admin API; privileges
//          dropped; the fleet node started; the control-file watch; the service accepts work
//          (its socket is the last thing to appear); "started"; the loop until SIGTERM.
//   after: the fleet node revokes its lease, the admin API stops, "stopped".
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "admin/admin_flags.h"
#include "admin/policy_store.h"
#include "admin/server.h"
#include "daemon/control_watch.h"
#include "daemon/serve.h"
#include "fleet/fleet_flags.h"
#include "stats/http_endpoint.h"
#include "util/flags.h"

namespace qtls::daemon {

// The flags every daemon takes, parsed in one place; each daemon's usage text lists them with
// its own defaults.
struct CommonFlags {
  std::string home = "/var/qmail";
  std::string user;           // the service user; required when started as root
  std::string metricsListen;  // the daemon's default; "none" = off
  std::chrono::milliseconds watchQuiet{500};
  int threads = 2;
  long drainSeconds = 60;
  admin::AdminFlags admin;
  fleet::FleetFlags fleet;
};
bool readCommonFlag(FlagReader& f, CommonFlags& c);

// A daemon's own part on the event loop.
class Service {
 public:
  virtual ~Service() = default;
  // Before privileges drop: what needs the start-up user (the agent's port 25).
  virtual absl::Status bind() { return absl::OkStatus(); }
  // The last step of start-up: accept work. When it returns, the daemon is up.
  virtual absl::Status accept() = 0;
  virtual std::string startedLine() const = 0;  // "qtls-remoted started socket=..."
  virtual void reloaded() {}                    // after each SIGHUP reload of the policy
  virtual void stopAccepting() = 0;             // SIGTERM: no new work
  virtual void cutOff() = 0;                    // the drain is over: end what is left
  virtual int inFlight() const = 0;
  virtual std::string inFlightWhat() const = 0;  // "deliveries in flight"
  virtual std::string status() const = 0;        // systemd's STATUS= line
};

struct DaemonParts {
  std::string program;      // "qtls-remoted"
  std::string defaultUser;  // qmail's user for this job ("qmailr"), for the --user hint
  std::string reloadWhat;   // "control files": what a reload loads, for its log line
  admin::Schema schema;
  std::unique_ptr<admin::PolicyCompiler> compiler;
  stats::Registry* registry = nullptr;
  admin::EventHub* events = nullptr;  // WatchSessions
  stats::ConfigMetrics* configMetrics = nullptr;
  admin::ResolveFn resolve;
};

class Skeleton {
 public:
  Skeleton(const CommonFlags& flags, DaemonParts parts);
  ~Skeleton();
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;

  // Phase 1. The event loop exists once it returns.
  absl::Status init();
  asio::io_context& io() { return *io_; }
  admin::PolicyStore& policy() { return *policy_; }

  // Phases 2 and 3: starts `service`, runs the loop until SIGTERM and its drain, stops.
  absl::Status run(std::unique_ptr<Service> service);

 private:
  absl::Status start();
  absl::Status reload(const std::string& caller);

  CommonFlags flags_;
  DaemonParts parts_;
  std::unique_ptr<admin::PolicyStore> policy_;
  std::unique_ptr<fleet::FleetNode> fleet_;
  std::unique_ptr<asio::io_context> io_;
  std::optional<Runner> runner_;      // catches signals from its construction on
  std::unique_ptr<Service> service_;  // on the loop: goes before it
  std::optional<stats::HttpEndpoint> endpoint_;
  std::optional<admin::AdminServer> admin_;
  std::optional<ControlWatch> watch_;
};

}  // namespace qtls::daemon
