// qtls-remoted's parts for the daemon skeleton (remoted_service.h).
#include "remoted_service.h"

#include <set>
#include <string_view>

#include "admin/policy_compiler.h"
#include "resolve_policy.h"
#include "smtp_conn.h"
#include "tls/context_common.h"
#include "util/text.h"

namespace qtls::remoted {

RemotedState::RemotedState(const RemotedFlags& f)
    : flags(f), connCache(f.conn.cache, &metrics), connLimits(f.conn.limits, &metrics) {
  SmtpConn::setQuickAck(f.conn.quickAck);
}

daemon::DaemonParts RemotedState::parts() {
  daemon::DaemonParts p;
  p.program = "qtls-remoted";
  p.defaultUser = "qmailr";
  p.reloadWhat = "control files";
  p.schema = admin::remotedSchema();
  const std::string home = flags.common.home;
  p.compiler = std::make_unique<admin::TypedCompiler<RemoteConfig>>(
      [home](const std::string& copy) {
        auto cfg = loadRemoteConfig(copy);
        if (cfg.ok()) (*cfg)->rebase(home);
        return cfg;
      },
      [this](uint64_t gen, const std::string& digest, const admin::Items& items,
             std::shared_ptr<RemoteConfig> cfg) { return activate(gen, digest, items, cfg); },
      nullptr, &candidate);
  p.registry = &registry;
  p.events = &events;
  p.configMetrics = &metrics.config;
  p.resolve = [this](const v1::ResolvePolicyRequest& req, v1::ResolvePolicyResponse* out) {
    return resolvePolicy(*store.current(), req, out);
  };
  return p;
}

absl::Status RemotedState::activate(uint64_t gen, const std::string& digest,
                                    const admin::Items& items, std::shared_ptr<RemoteConfig> cfg) {
  if (auto s = store.publish(std::move(cfg), gen, digest); !s.ok()) return s;
  metrics.config.inForce(gen, digest);
  connCache.retire(digest);  // idle connections made under another policy get QUIT
  long long soonest = -1;
  std::set<std::string_view> seen;  // a bundle named for many hosts is parsed once
  for (const auto& [path, content] : items) {
    if (path.rfind("tlshosts/", 0) != 0 || !seen.insert(content).second) continue;
    long long t = tls::earliestNotAfter(content);
    if (t >= 0 && (soonest < 0 || t < soonest)) soonest = t;
  }
  auto expiry = [&](const char* cert, long long notAfter) {
    if (notAfter < 0)
      metrics.certExpiry.remove({cert});
    else
      metrics.certExpiry.with({cert}).set(static_cast<double>(notAfter));
  };
  expiry("tlshosts_ca", soonest);
  auto cc = items.find("clientcert.pem");
  expiry("clientcert", cc == items.end() ? -1 : tls::earliestNotAfter(cc->second));
  return absl::OkStatus();
}

RemotedService::RemotedService(asio::io_context& io, RemotedState& state,
                               std::unique_ptr<Resolver> resolver)
    : io_(io),
      st_(state),
      resolver_(std::move(resolver)),
      ipme_(std::make_shared<IpMe>(IpMe::fromInterfaces(state.flags.ipmeExclude))),
      intake_(
          io, state.flags.socketPath, state.flags.allowed, [this] { return deps(); },
          state.flags.maxDeliveries) {}

DeliveryDeps RemotedService::deps() {
  DeliveryDeps d;
  d.config = st_.store.current();
  d.candidate = st_.candidate.current();
  d.resolver = resolver_.get();
  {
    std::lock_guard<std::mutex> lock(ipmeMu_);
    d.ipme = ipme_;
  }
  const RemotedFlags& f = st_.flags;
  d.mxPort = f.mxPort;
  d.maxDeliverySeconds = f.deliveryLimit;
  d.metrics = &st_.metrics;
  d.events = &st_.events;
  d.pool = io_.get_executor();
  d.cache = &st_.connCache;
  d.sessions = f.conn.resumption ? &st_.tlsSessions : nullptr;
  d.deadHosts = f.conn.tcpto ? &st_.deadHosts : nullptr;
  d.limits = &st_.connLimits;
  d.pipelining = f.conn.pipelining;
  return d;
}

absl::Status RemotedService::accept() {
  st_.connCache.start(io_.get_executor());
  return intake_.start();  // the shim socket last: once it exists, the admin API is up too
}

std::string RemotedService::startedLine() const {
  return text::cat("qtls-remoted started socket=", st_.flags.socketPath,
                   " home=", st_.flags.common.home, " generation=", st_.store.current()->generation,
                   " threads=", st_.flags.common.threads);
}

void RemotedService::reloaded() {
  auto fresh = std::make_shared<IpMe>(IpMe::fromInterfaces(st_.flags.ipmeExclude));
  std::lock_guard<std::mutex> lock(ipmeMu_);
  ipme_ = std::move(fresh);
}

void RemotedService::stopAccepting() {
  intake_.stop();
  st_.connCache.retire("");  // idle connections get QUIT now
}

// Deliveries, and the QUITs of idle connections closed at the stop (each bounded to seconds).
int RemotedService::inFlight() const { return intake_.active() + SmtpConn::quitsInFlight(); }

std::string RemotedService::status() const {
  auto cfg = st_.store.current();
  return text::cat("policy generation ", cfg->generation, " ", cfg->digest, "; ", intake_.active(),
                   " deliveries in flight");
}

}  // namespace qtls::remoted
