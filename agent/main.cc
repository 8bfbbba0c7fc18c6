// qtls-smtpd: the inbound SMTP agent. Wires the pieces together; no logic of its own.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>

#include "admin/admin_flags.h"
#include "admin/policy_store.h"
#include "admin/server.h"
#include "daemon/control_watch.h"
#include "daemon/privileges.h"
#include "daemon/serve.h"
#include "fleet/fleet_flags.h"
#include "listener.h"
#include "log/log.h"
#include "metrics.h"
#include "qtls/v1/policy.pb.h"
#include "smtpd_config.h"
#include "stats/http_endpoint.h"
#include "util/flags.h"
#include "util/text.h"

using namespace qtls;
using namespace qtls::agent;

namespace {

const char kUsage[] =
    "usage: qtls-smtpd [options]\n"
    "  --listen ADDR:PORT[,tls][,ciphers=S]  listener; repeatable (default 0.0.0.0:25 and\n"
    "                          [::]:25 unless systemd passed sockets); ',tls' = implicit TLS\n"
    "  --qmail-home DIR        qmail home with control/ (default /var/qmail)\n"
    "  --qmail-queue PATH      program to hand messages to (default <home>/bin/qmail-queue)\n"
    "  --user USER             drop to this user (and its group) after binding\n"
    "  --max-connections N     overall (default 1000)\n"
    "  --max-per-client N      per client address, IPv6 per --ipv6-prefix (default 100)\n"
    "  --ipv6-prefix N         IPv6 clients are counted per /N (default 64)\n"
    "  --reserve-percent N     last N% of --max-connections only for clients holding none\n"
    "                          (default 10)\n"
    "  --reserve-ipv6-prefix N for the reserve, IPv6 clients are grouped per /N (default 48)\n"
    "  --evict-idle N          with every slot taken, a new client makes the session longest\n"
    "                          without progress (MAIL, RCPT, a message; at least N seconds)\n"
    "                          close (default 10)\n"
    "  --max-junk-commands N   commands in a row without progress, then 421 (default 100)\n"
    "  --command-timeout N     seconds for a command line once begun (default 120)\n"
    "  --data-min-rate N       DATA bytes/second it must average after --data-grace\n"
    "                          (default 1024)\n"
    "  --data-grace N          seconds before the DATA rate counts (default 60)\n"
    "  --drain-seconds N       on SIGTERM, idle sessions get 421 at once; messages in\n"
    "                          progress get N seconds (default 30)\n"
    "  --max-line N            command line bytes (default 4096)\n"
    "  --max-recipients N      per message (default 1000)\n"
    "  --max-message N         bytes, when control/databytes is 0 (default 67108864)\n"
    "  --threads N             event-loop threads (default 2)\n"
    "  --metrics-listen H:P    Prometheus /metrics address (default 127.0.0.1:9742; none = off)\n"
    "  --watch-control MS      hand edits in control/ apply once quiet for MS milliseconds\n"
    "                          (default 500; 0 = at SIGHUP only)\n";

// ResolvePolicy for inbound: what a client would get, from the configuration in force.
std::string resolve(const SmtpdConfig& cfg, const qtls::v1::ResolvePolicyRequest& req,
                    qtls::v1::ResolvePolicyResponse* out) {
  out->set_generation(cfg.generation);
  out->set_starttls_offered(cfg.tlsFor("") != nullptr);
  std::vector<std::string> why;
  if (!req.client_address().empty()) {
    std::error_code ec;
    auto addr = asio::ip::make_address(req.client_address(), ec);
    if (ec) return "client_address: not an IP address: " + req.client_address();
    addr = unmapped(addr);
    for (const Cidr& c : cfg.relayClients)
      if (c.contains(addr)) {
        out->set_relay_allowed(true);
        why.push_back(text::cat("control/relayclients has ", c.network.to_string(), "/", c.prefix));
        break;
      }
  }
  if (!out->relay_allowed() && !req.client_cert_email().empty()) {
    if (!cfg.certRelay)
      why.push_back("certificate relay is off (control/tlsclients or clientca.pem missing)");
    else if (cfg.tlsclients.count(text::lower(req.client_cert_email()))) {
      out->set_relay_allowed(true);
      why.push_back(text::cat("control/tlsclients lists ", req.client_cert_email(),
                              " (with a certificate that verifies against clientca.pem)"));
    } else {
      why.push_back(text::cat("control/tlsclients does not list ", req.client_cert_email()));
    }
  }
  if (!req.recipient().empty()) {
    const std::string rcpt = text::lower(req.recipient());
    const size_t at = rcpt.rfind('@');
    const std::string domain = at == std::string::npos ? "" : rcpt.substr(at + 1);
    bool listed = !cfg.haveRcpthosts;
    for (size_t dot = 0; !listed && !domain.empty();) {
      listed = cfg.rcpthosts.count(domain.substr(dot)) > 0 ||
               (dot > 0 && cfg.rcpthosts.count(domain.substr(dot - 1)) > 0);
      dot = domain.find('.', dot);
      if (dot == std::string::npos) break;
      ++dot;
    }
    out->set_recipient_accepted(listed || out->relay_allowed());
    why.push_back(!cfg.haveRcpthosts ? "control/rcpthosts is missing: every recipient is accepted"
                  : listed           ? text::cat("control/rcpthosts accepts ", domain)
                  : out->relay_allowed()
                      ? text::cat(domain, " is not in rcpthosts; relaying allowed")
                      : text::cat(domain, " is not in control/rcpthosts: 553"));
  }
  std::string reason;
  for (const auto& w : why) reason += (reason.empty() ? "" : "; ") + w;
  out->set_reason(reason.empty() ? "give client_address, client_cert_email or recipient" : reason);
  return "";
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "qtls-smtpd: fatal: %s\n", msg.c_str());
  std::exit(111);
}

}  // namespace

int main(int argc, char** argv) {
  std::string home = "/var/qmail", queue, user;
  std::vector<std::string> listenArgs;
  ConnectionLimits limits;
  SessionLimits sessionLimits;
  int threads = 2;
  long drainSeconds = 30;
  std::string metricsListen = "127.0.0.1:9742";
  std::chrono::milliseconds watchQuiet{500};
  admin::AdminFlags adminFlags;
  fleet::FleetFlags fleetFlags;
  FlagReader f(argc, argv, [](const std::string& m) { die(m + "\n" + kUsage); });
  while (f.next()) {
    const std::string& a = f.name();
    if (admin::readAdminFlag(f, adminFlags)) continue;
    if (fleet::readFleetFlag(f, fleetFlags)) continue;
    if (a == "--listen")
      listenArgs.push_back(f.value());
    else if (a == "--qmail-home")
      home = f.value();
    else if (a == "--qmail-queue")
      queue = f.value();
    else if (a == "--user")
      user = f.value();
    else if (a == "--max-connections")
      limits.maxConnections = static_cast<int>(f.number(1, 1000000));
    else if (a == "--max-per-client")
      limits.maxPerClient = static_cast<int>(f.number(1, 1000000));
    else if (a == "--ipv6-prefix")
      limits.ipv6Prefix = static_cast<int>(f.number(1, 128));
    else if (a == "--reserve-ipv6-prefix")
      limits.reserveIpv6Prefix = static_cast<int>(f.number(1, 128));
    else if (a == "--max-junk-commands")
      sessionLimits.maxJunkCommands = static_cast<size_t>(f.number(1, 1L << 30));
    else if (a == "--reserve-percent")
      limits.reservePercent = static_cast<int>(f.number(0, 90));
    else if (a == "--evict-idle")
      limits.evictAfterIdle = std::chrono::seconds(f.number(0, 86400));
    else if (a == "--command-timeout")
      sessionLimits.commandTimeout = std::chrono::seconds(f.number(1, 86400));
    else if (a == "--data-min-rate")
      sessionLimits.dataMinRate = static_cast<size_t>(f.number(1, 1L << 30));
    else if (a == "--data-grace")
      sessionLimits.dataGrace = std::chrono::seconds(f.number(0, 86400));
    else if (a == "--drain-seconds")
      drainSeconds = f.number(0, 86400);
    else if (a == "--max-line")
      sessionLimits.maxLine = static_cast<size_t>(f.number(512, 1 << 20));
    else if (a == "--max-recipients")
      sessionLimits.maxRecipients = static_cast<size_t>(f.number(1, 1000000));
    else if (a == "--max-message")
      sessionLimits.maxMessage = static_cast<size_t>(f.number());
    else if (a == "--watch-control")
      watchQuiet = std::chrono::milliseconds(f.number(0, 3600000));
    else if (a == "--metrics-listen")
      metricsListen = f.value();
    else if (a == "--threads")
      threads = static_cast<int>(f.number(1, 256));
    else if (a == "--version") {
      std::printf("qtls-smtpd %s\n", QTLS_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::fputs(admin::kAdminUsage, stdout);
      std::fputs(fleet::kFleetUsage, stdout);
      return 0;
    } else
      die("unknown option " + a + "\n" + kUsage);
  }
  if (queue.empty()) queue = home + "/bin/qmail-queue";
  admin::adminDefaults(adminFlags, "smtpd");
  if (auto s = daemon::checkUser(user, "qtls-smtpd", "qmaild"); !s.ok())
    die(std::string(s.message()));
  if (auto s = daemon::raiseFileLimit(3 * static_cast<rlim_t>(limits.maxConnections) + 64,
                                      "--max-connections " + std::to_string(limits.maxConnections));
      !s.ok())
    die(std::string(s.message()));
  signal(SIGPIPE, SIG_IGN);

  // What sessions use lives longer than the io_context: at a shutdown that cut sessions off,
  // the io_context's destructor destroys their frames, which still touch these.
  SmtpdConfigStore store;
  SmtpdConfigStore candidate;  // a fleet candidate evaluated report-only; empty when none
  SessionRegistry sessionRegistry;
  std::vector<ListenerSpec> specs;
  for (const auto& l : listenArgs) {
    auto spec = parseListenerSpec(l);
    if (!spec.ok()) die(std::string(spec.status().message()));
    specs.push_back(*spec);
  }
  std::set<std::string> cipherVariants;
  for (const auto& s : specs) cipherVariants.insert(s.ciphers);

  stats::Registry registry;
  AgentMetrics metrics(registry);
  admin::SessionHub sessions;
  // The policy store owns generations: every load of the control files goes through it.
  auto loadSmtpd = [&](const std::string& copy) -> absl::StatusOr<std::shared_ptr<SmtpdConfig>> {
    auto cfg = loadSmtpdConfig(copy, cipherVariants);
    if (cfg.ok()) (*cfg)->rebase(home);
    return cfg;
  };
  // qmail-smtpd relays for everyone without rcpthosts; a remote change must not.
  auto noOpenRelay = [](const SmtpdConfig& cfg) -> absl::Status {
    if (!cfg.haveRcpthosts)
      return absl::InvalidArgumentError(
          "rcpthosts: a policy without control/rcpthosts would make qtls-smtpd an open "
          "relay; refused");
    return absl::OkStatus();
  };
  auto activateSmtpd = [&](uint64_t gen, const std::string& digest, const admin::Items&,
                           std::shared_ptr<SmtpdConfig> cfg) {
    auto before = store.current();
    if (auto s = store.publish(std::move(cfg), gen, digest); !s.ok()) return s;
    auto now = store.current();
    if (before && before->tlsFor("") && !now->tlsFor(""))
      log::warn(text::cat("policy: generation ", gen,
                          " has no servercert.pem: STARTTLS is no longer offered, a client "
                          "that asks for it gets 454, and clients that require TLS will "
                          "defer their mail"));
    metrics.config.inForce(gen, digest);
    const auto* t = now->tlsFor("");
    const long long notAfter = t ? tls::certificateNotAfter(t->defaultCtx.get()) : -1;
    if (notAfter < 0)
      metrics.certExpiry.remove({"servercert"});
    else
      metrics.certExpiry.with({"servercert"}).set(static_cast<double>(notAfter));
    return absl::OkStatus();
  };
  admin::PolicyStore policy(admin::smtpdSchema(), home, adminFlags.stateDir,
                            std::make_unique<admin::TypedCompiler<SmtpdConfig>>(
                                loadSmtpd, activateSmtpd, noOpenRelay, &candidate));
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

  asio::io_context io;
  daemon::Runner runner(io);  // before anything is published: see daemon/serve.h
  Listeners listeners(
      io, limits,
      [&]() {
        SessionParams p;
        p.registry = &sessionRegistry;
        p.config = store.current();
        p.candidate = candidate.current();
        p.qmailQueue = queue;
        p.limits = sessionLimits;
        p.metrics = &metrics;
        p.events = &sessions;
        return p;
      },
      sessionRegistry);
  auto adopted = listeners.adoptSystemdSockets();
  if (!adopted.ok()) die(std::string(adopted.status().message()));
  if (*adopted == 0 && specs.empty()) specs = {{"0.0.0.0:25", false, ""}, {"[::]:25", false, ""}};
  for (const auto& s : specs)
    if (auto st = listeners.bind(s); !st.ok()) die(std::string(st.message()));

  // Before privileges are dropped: the socket directory is usually root's.
  admin::AdminServer adminServer(
      policy, registry, sessions,
      [&](const qtls::v1::ResolvePolicyRequest& req, qtls::v1::ResolvePolicyResponse* out) {
        return resolve(*store.current(), req, out);
      });
  if (auto s = admin::startAdmin(adminServer, adminFlags); !s.ok()) die(std::string(s.message()));

  if (auto s = daemon::dropPrivileges(user); !s.ok()) die(std::string(s.message()));
  if (fleetNode) fleetNode->start();  // as the daemon's user, like every later apply

  // SIGHUP, and hand edits in control/ once they are quiet (daemon/control_watch.h): as the
  // daemon's user, and before "started", so an edit made once the daemon says it is up counts.
  auto reload = [&](const std::string& caller) {
    return policy.reloadLogged(caller, "control files and certificates");
  };
  daemon::ControlWatch watch(home + "/control", watchQuiet, [&] { return reload("inotify"); });
  if (auto s = watch.start(); !s.ok()) die(std::string(s.message()));
  stats::HttpEndpoint endpoint(registry);
  if (auto s = endpoint.serve(metricsListen); !s.ok()) die(std::string(s.message()));
  listeners.start();
  std::string where;
  for (const auto& s : listeners.specs())
    where += text::cat(where.empty() ? "" : ",", s.address, s.implicitTls ? "(tls)" : "");
  auto cfg = store.current();
  log::info(text::cat("qtls-smtpd started listen=", where, " home=", home, " starttls=",
                      cfg->tlsFor("") ? "yes" : "no", " certrelay=", cfg->certRelay ? "yes" : "no",
                      " rcpthosts=", cfg->haveRcpthosts ? "yes" : "MISSING(open relay)"));
  daemon::ServeOptions serve;
  serve.threads = threads;
  serve.drain = std::chrono::seconds(drainSeconds);
  serve.cutOff = [&] { listeners.cutOff(); };
  serve.reload = [&] { reload("SIGHUP").IgnoreError(); };  // reloadLogged logged it
  serve.stopAccepting = [&] {
    adminServer.setServing(false);  // health: NOT_SERVING while draining
    listeners.stop();
  };
  serve.inFlight = [&] { return listeners.active(); };
  serve.inFlightWhat = "sessions open";
  serve.status = [&] {
    auto cfg = store.current();
    return text::cat("policy generation ", cfg->generation, " ", cfg->digest, "; ",
                     listeners.active(), " sessions open");
  };
  runner.run(serve);
  if (fleetNode) fleetNode->stop();  // revokes its lease: the status key goes now
  adminServer.stop();
  log::info("qtls-smtpd stopped");
  return 0;
}
