// qtls-remoted: the outbound delivery daemon. Wires the pieces together; no logic of its own.
#include <openssl/ssl.h>
#include <pwd.h>
#include <signal.h>

#include <asio/io_context.hpp>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "admin/admin_flags.h"
#include "admin/policy_store.h"
#include "admin/server.h"
#include "conn_cache.h"
#include "conn_flags.h"
#include "conn_limits.h"
#include "daemon/control_watch.h"
#include "daemon/privileges.h"
#include "daemon/serve.h"
#include "dead_hosts.h"
#include "delivery.h"
#include "fleet/fleet_flags.h"
#include "intake.h"
#include "log/log.h"
#include "metrics.h"
#include "plan.h"
#include "qtls/v1/policy.pb.h"
#include "remote_config.h"
#include "resolver.h"
#include "stats/http_endpoint.h"
#include "targets.h"
#include "tls/context_common.h"
#include "util/flags.h"
#include "util/text.h"

using namespace qtls;
using namespace qtls::remoted;

namespace {

const char kUsage[] =
    "usage: qtls-remoted [options]\n"
    "  --qmail-home DIR      qmail home with control/ (default /var/qmail)\n"
    "  --socket PATH         shim socket (default /run/qtls/remoted.sock)\n"
    "  --allow-user USER     user or uid allowed to deliver; repeatable (default qmailr)\n"
    "  --dns-server H:P      DNS server(s), comma-separated (default: /etc/resolv.conf)\n"
    "  --dns-timeout-ms N    per-try DNS timeout (default 3000)\n"
    "  --mx-port N           port for MX and A deliveries (default 25)\n"
    "  --ipme-exclude ADDR   local address not treated as \"me\"; repeatable\n"
    "  --max-deliveries N    concurrent deliveries; more are deferred with Z (default 1000)\n"
    "  --threads N           delivery threads (default 2)\n"
    "  --delivery-limit N    cap in seconds of each delivery's deadline (default 3600)\n"
    "  --drain-seconds N     on SIGTERM, wait this long for deliveries, then cut them off\n"
    "                        with a Z (default 60)\n"
    "  --user USER           run as USER once the admin socket is open (the shim socket is\n"
    "                        made as USER); required when started as root (root: stay root)\n"
    "  --metrics-listen H:P  Prometheus /metrics address (default 127.0.0.1:9741; none = off)\n"
    "  --watch-control MS    hand edits in control/ apply once quiet for MS milliseconds\n"
    "                        (default 500; 0 = at SIGHUP only)\n"
    "  --verbose             debug logging\n";

// ResolvePolicy: the plan a delivery would get, from the configuration in force.
std::string resolve(const RemoteConfig& cfg, const v1::ResolvePolicyRequest& req,
                    v1::ResolvePolicyResponse* out) {
  if (req.domain().empty() && req.mx_host().empty())
    return "domain: give the delivery domain (and mx_host for the MX host's qmail files)";
  const std::string domain = text::lower(req.domain().empty() ? req.mx_host() : req.domain());
  Target t;
  t.fqdn = req.mx_host().empty() ? domain : req.mx_host();
  std::error_code ec;
  asio::ip::make_address(t.fqdn, ec);
  if (!ec) t.fqdn.clear();  // an IP target has no name: no qmail policy file applies
  TlsPlan plan = makePlan(cfg, domain, t);
  out->set_generation(cfg.generation);
  out->set_level(static_cast<v1::TlsLevel>(static_cast<int>(plan.decision.level) + 1));
  out->set_source(std::string(policy::sourceName(plan.decision.source)));
  std::string reason = plan.sentence;
  if (reason.empty()) switch (plan.decision.source) {
      case policy::Source::kNoName:
        reason = "the target is an IP address: opportunistic TLS";
        break;
      case policy::Source::kExhaustiveList:
        reason = "control/tlshosts/exhaustivelist exists and names no " + t.fqdn + ".pem";
        break;
      case policy::Source::kNotlshosts:
        reason = "control/notlshosts/" + t.fqdn + " exists";
        break;
      default:
        reason = "no policy file applies: opportunistic TLS";
        break;
    }
  if (req.mx_host().empty())
    reason += " (qmail's files are per MX host; this answer used the domain as the host name)";
  out->set_reason(reason);
  out->set_ca_file(plan.caLabel);
  for (const auto& n : plan.names) out->add_match_names(n);
  if (plan.entry) {
    if (plan.entry->minVersion != 0)
      out->set_min_version(plan.entry->minVersion == TLS1_3_VERSION   ? "TLS1.3"
                           : plan.entry->minVersion == TLS1_2_VERSION ? "TLS1.2"
                           : plan.entry->minVersion == TLS1_1_VERSION ? "TLS1.1"
                                                                      : "TLS1");
    for (const auto& p : plan.entry->pins) {
      static const char hex[] = "0123456789abcdef";
      std::string h = p.kind == policy::Pin::Kind::kSpki ? "spki:" : "cert:";
      for (unsigned char c : p.sha256) {
        h.push_back(hex[c >> 4]);
        h.push_back(hex[c & 15]);
      }
      out->add_fingerprints(h);
    }
  }
  return "";
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "qtls-remoted: fatal: %s\n", msg.c_str());
  std::exit(111);
}

}  // namespace

int main(int argc, char** argv) {
  std::string home = "/var/qmail", socketPath = "/run/qtls/remoted.sock";
  std::vector<std::string> users;
  std::vector<asio::ip::address> ipmeExclude;
  Resolver::Options dnsOpts;
  unsigned mxPort = 25;
  int threads = 2;
  int maxDeliveries = 1000;
  long deliveryLimit = 3600, drainSeconds = 60;
  std::string user;
  std::string metricsListen = "127.0.0.1:9741";
  std::chrono::milliseconds watchQuiet{500};
  admin::AdminFlags adminFlags;
  fleet::FleetFlags fleetFlags;
  ConnFlags connFlags;
  FlagReader f(argc, argv, [](const std::string& m) { die(m + "\n" + kUsage); });
  while (f.next()) {
    const std::string& a = f.name();
    if (admin::readAdminFlag(f, adminFlags)) continue;
    if (fleet::readFleetFlag(f, fleetFlags)) continue;
    if (readConnFlag(f, connFlags)) continue;
    if (a == "--qmail-home")
      home = f.value();
    else if (a == "--socket")
      socketPath = f.value();
    else if (a == "--allow-user")
      users.push_back(f.value());
    else if (a == "--dns-server")
      dnsOpts.servers = f.value();
    else if (a == "--dns-timeout-ms")
      dnsOpts.timeoutMs = static_cast<int>(f.number(1, 600000));
    else if (a == "--mx-port")
      mxPort = static_cast<unsigned>(f.number(1, 65535));
    else if (a == "--max-deliveries")
      maxDeliveries = static_cast<int>(f.number(1, 1000000));
    else if (a == "--delivery-limit")
      deliveryLimit = f.number(1, 86400);
    else if (a == "--drain-seconds")
      drainSeconds = f.number(0, 86400);
    else if (a == "--user")
      user = f.value();
    else if (a == "--threads")
      threads = static_cast<int>(f.number(1, 256));
    else if (a == "--watch-control")
      watchQuiet = std::chrono::milliseconds(f.number(0, 3600000));
    else if (a == "--metrics-listen")
      metricsListen = f.value();
    else if (a == "--verbose")
      log::setMinSeverity(log::Severity::kDebug);
    else if (a == "--ipme-exclude") {
      std::string v = f.value();
      std::error_code ec;
      auto addr = asio::ip::make_address(v, ec);
      if (ec) die("--ipme-exclude: not an IP address: " + v);
      ipmeExclude.push_back(addr);
    } else if (a == "--version") {
      std::printf("%s %s\n", "qtls-remoted", QTLS_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::fputs(kConnUsage, stdout);
      std::fputs(admin::kAdminUsage, stdout);
      std::fputs(fleet::kFleetUsage, stdout);
      return 0;
    } else {
      die("unknown option " + a + "\n" + kUsage);
    }
  }
  if (users.empty()) users.push_back("qmailr");
  admin::adminDefaults(adminFlags, "remoted");
  std::set<uid_t> allowed;
  for (const auto& u : users) {
    if (!u.empty() && std::strspn(u.c_str(), "0123456789") == u.size()) {
      allowed.insert(static_cast<uid_t>(std::strtoul(u.c_str(), nullptr, 10)));
      continue;
    }
    struct passwd* pw = getpwnam(u.c_str());
    if (pw == nullptr) die("--allow-user: no such user: " + u);
    allowed.insert(pw->pw_uid);
  }

  if (auto s = daemon::checkUser(user, "qtls-remoted", "qmailr"); !s.ok())
    die(std::string(s.message()));
  signal(SIGPIPE, SIG_IGN);
  // What deliveries use lives longer than the io_context: when the stop drain cuts deliveries
  // off, the io_context's destructor destroys their frames, which still touch these.
  ConfigStore store;
  ConfigStore candidate;  // a fleet candidate evaluated report-only; empty when none
  stats::Registry registry;
  RemoteMetrics metrics(registry);
  admin::SessionHub sessions;
  ConnCache connCache(connFlags.cache, &metrics);
  ConnLimits connLimits(connFlags.limits, &metrics);
  DeadHosts deadHosts(&metrics);
  tls::ClientSessionCache tlsSessions;
  SmtpConn::setQuickAck(connFlags.quickAck);
  // The policy store owns generations: every load of the control files goes through it.
  auto loadRemote = [&](const std::string& copy) -> absl::StatusOr<std::shared_ptr<RemoteConfig>> {
    auto cfg = loadRemoteConfig(copy);
    if (cfg.ok()) (*cfg)->rebase(home);
    return cfg;
  };
  auto activateRemote = [&](uint64_t gen, const std::string& digest, const admin::Items& items,
                            std::shared_ptr<RemoteConfig> cfg) {
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
  };
  admin::PolicyStore policy(admin::remotedSchema(), home, adminFlags.stateDir,
                            std::make_unique<admin::TypedCompiler<RemoteConfig>>(
                                loadRemote, activateRemote, nullptr, &candidate));
  fleet::FleetNode* fleetNode = nullptr;  // set below with --fleet-etcd
  policy.setObserver([&](const std::string& op, bool applied) {
    metrics.config.change(op, applied);
    if (fleetNode) fleetNode->policyChanged();
  });
  // Policy, keys and state are read as the service user, as every later reload is.
  auto node =
      fleet::openAsServiceUser(user, adminFlags.stateDir, fleetFlags, policy, metrics.config);
  if (!node.ok()) die(std::string(node.status().message()));
  fleetNode = node->get();
  // The io_context before the resolver: at shutdown the resolver goes first, and the answers it
  // still owes are posted to a live io_context, whose destructor then drops them.
  asio::io_context io;
  daemon::Runner runner(io);  // before anything is published: see daemon/serve.h
  auto resolver = Resolver::create(dnsOpts);
  if (!resolver.ok()) die(std::string(resolver.status().message()));
  std::shared_ptr<const IpMe> ipme = std::make_shared<IpMe>(IpMe::fromInterfaces(ipmeExclude));
  std::mutex ipmeMu;

  Resolver* res = resolver->get();
  Intake intake(
      io, socketPath, allowed,
      [&]() {
        DeliveryDeps d;
        d.config = store.current();
        d.candidate = candidate.current();
        d.resolver = res;
        {
          std::lock_guard<std::mutex> lock(ipmeMu);
          d.ipme = ipme;
        }
        d.mxPort = mxPort;
        d.maxDeliverySeconds = deliveryLimit;
        d.metrics = &metrics;
        d.events = &sessions;
        d.pool = io.get_executor();
        d.cache = &connCache;
        d.sessions = connFlags.resumption ? &tlsSessions : nullptr;
        d.deadHosts = connFlags.tcpto ? &deadHosts : nullptr;
        d.limits = &connLimits;
        d.pipelining = connFlags.pipelining;
        return d;
      },
      maxDeliveries);
  stats::HttpEndpoint endpoint(registry);
  if (auto s = endpoint.serve(metricsListen); !s.ok()) die(std::string(s.message()));

  admin::AdminServer adminServer(
      policy, registry, sessions,
      [&](const v1::ResolvePolicyRequest& req, v1::ResolvePolicyResponse* out) {
        return resolve(*store.current(), req, out);
      });
  if (auto s = admin::startAdmin(adminServer, adminFlags); !s.ok()) die(std::string(s.message()));
  if (auto s = daemon::dropPrivileges(user); !s.ok()) die(std::string(s.message()));
  if (fleetNode) fleetNode->start();  // as the daemon's user, like every later apply

  // SIGHUP, and hand edits in control/ once they are quiet (daemon/control_watch.h): as the
  // daemon's user, and before "started", so an edit made once the daemon says it is up counts.
  auto reload = [&](const std::string& caller) {
    return policy.reloadLogged(caller, "control files");
  };
  daemon::ControlWatch watch(home + "/control", watchQuiet, [&] { return reload("inotify"); });
  if (auto s = watch.start(); !s.ok()) die(std::string(s.message()));
  connCache.start(io.get_executor());
  // The shim socket last: once it exists, the admin API is up too.
  if (auto s = intake.start(); !s.ok()) die(std::string(s.message()));
  log::info(text::cat("qtls-remoted started socket=", socketPath, " home=", home,
                      " generation=", store.current()->generation, " threads=", threads));
  daemon::ServeOptions serve;
  serve.threads = threads;
  serve.drain = std::chrono::seconds(drainSeconds);
  serve.cutOff = [&] { intake.cutOff(); };
  serve.reload = [&] {
    reload("SIGHUP").IgnoreError();  // reloadLogged logged the outcome
    std::lock_guard<std::mutex> lock(ipmeMu);
    ipme = std::make_shared<IpMe>(IpMe::fromInterfaces(ipmeExclude));
  };
  serve.stopAccepting = [&] {
    adminServer.setServing(false);  // health: NOT_SERVING while draining
    intake.stop();
    connCache.retire("");  // idle connections get QUIT now
  };
  // Deliveries, and the QUITs of idle connections closed at the stop (each bounded to seconds).
  serve.inFlight = [&] { return intake.active() + SmtpConn::quitsInFlight(); };
  serve.inFlightWhat = "deliveries in flight";
  serve.status = [&] {
    auto cfg = store.current();
    return text::cat("policy generation ", cfg->generation, " ", cfg->digest, "; ", intake.active(),
                     " deliveries in flight");
  };
  runner.run(serve);
  if (fleetNode) fleetNode->stop();  // revokes its lease: the status key goes now
  adminServer.stop();
  log::info("qtls-remoted stopped");
  return 0;
}
