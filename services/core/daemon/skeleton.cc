// The daemons' start-up, run and shutdown (skeleton.h).
#include "daemon/skeleton.h"

#include <signal.h>

#include "daemon/privileges.h"
#include "log/log.h"
#include "util/text.h"

namespace qtls::daemon {

bool readCommonFlag(FlagReader& f, CommonFlags& c) {
  if (admin::readAdminFlag(f, c.admin) || fleet::readFleetFlag(f, c.fleet)) return true;
  const std::string& n = f.name();
  if (n == "--qmail-home")
    c.home = f.value();
  else if (n == "--user")
    c.user = f.value();
  else if (n == "--metrics-listen")
    c.metricsListen = f.value();
  else if (n == "--watch-control")
    c.watchQuiet = std::chrono::milliseconds(f.number(0, 3600000));
  else if (n == "--threads")
    c.threads = static_cast<int>(f.number(1, 256));
  else if (n == "--drain-seconds")
    c.drainSeconds = f.number(0, 86400);
  else if (n == "--verbose")
    log::setMinSeverity(log::Severity::kDebug);
  else
    return false;
  return true;
}

Skeleton::Skeleton(const CommonFlags& flags, DaemonParts parts)
    : flags_(flags), parts_(std::move(parts)) {}

Skeleton::~Skeleton() = default;

absl::Status Skeleton::init() {
  if (auto s = checkUser(flags_.user, parts_.program, parts_.defaultUser); !s.ok()) return s;
  signal(SIGPIPE, SIG_IGN);
  // The policy store owns generations: every load of the control files goes through it.
  policy_ = std::make_unique<admin::PolicyStore>(parts_.schema, flags_.home, flags_.admin.stateDir,
                                                 std::move(parts_.compiler));
  policy_->setObserver([this](const std::string& op, bool applied) {
    parts_.configMetrics->change(op, applied);
    if (fleet_) fleet_->policyChanged();
  });
  // Policy, keys and state are read as the service user, as every later reload is.
  auto node = fleet::openAsServiceUser(flags_.user, flags_.admin.stateDir, flags_.fleet, *policy_,
                                       *parts_.configMetrics);
  if (!node.ok()) return node.status();
  fleet_ = std::move(*node);
  io_ = std::make_unique<asio::io_context>();
  runner_.emplace(*io_);  // before anything is published: see daemon/serve.h
  return absl::OkStatus();
}

absl::Status Skeleton::reload(const std::string& caller) {
  return policy_->reloadLogged(caller, parts_.reloadWhat);
}

absl::Status Skeleton::start() {
  if (auto s = service_->bind(); !s.ok()) return s;
  endpoint_.emplace(*parts_.registry);
  if (auto s = endpoint_->serve(flags_.metricsListen); !s.ok()) return s;
  // Before privileges are dropped: the socket directory is usually root's.
  admin_.emplace(*policy_, *parts_.registry, *parts_.events, parts_.resolve);
  if (auto s = admin::startAdmin(*admin_, flags_.admin); !s.ok()) return s;
  if (auto s = dropPrivileges(flags_.user); !s.ok()) return s;
  if (fleet_) fleet_->start();  // as the daemon's user, like every later apply
  // SIGHUP, and hand edits in control/ once they are quiet (daemon/control_watch.h): as the
  // daemon's user, and before "started", so an edit made once the daemon says it is up counts.
  watch_.emplace(flags_.home + "/control", flags_.watchQuiet, [this] { return reload("inotify"); });
  if (auto s = watch_->start(); !s.ok()) return s;
  if (auto s = service_->accept(); !s.ok()) return s;
  log::info(service_->startedLine());
  return absl::OkStatus();
}

absl::Status Skeleton::run(std::unique_ptr<Service> service) {
  service_ = std::move(service);
  if (auto s = start(); !s.ok()) return s;
  ServeOptions serve;
  serve.threads = flags_.threads;
  serve.drain = std::chrono::seconds(flags_.drainSeconds);
  serve.cutOff = [this] { service_->cutOff(); };
  serve.reload = [this] {
    reload("SIGHUP").IgnoreError();  // reloadLogged logged the outcome
    service_->reloaded();
  };
  serve.stopAccepting = [this] {
    admin_->setServing(false);  // health: NOT_SERVING while draining
    service_->stopAccepting();
  };
  serve.inFlight = [this] { return service_->inFlight(); };
  serve.inFlightWhat = service_->inFlightWhat();
  serve.status = [this] { return service_->status(); };
  runner_->run(serve);
  if (fleet_) fleet_->stop();  // revokes its lease: the status key goes now
  admin_->stop();
  log::info(parts_.program + " stopped");
  return absl::OkStatus();
}

}  // namespace qtls::daemon
