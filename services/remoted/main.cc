// qtls-remoted: the outbound delivery daemon. Wires the pieces together; no logic of its own.
#include <pwd.h>
#include <signal.h>

#include <asio/io_context.hpp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "daemon/serve.h"
#include "intake.h"
#include "log/log.h"
#include "metrics.h"
#include "remote_config.h"
#include "resolver.h"
#include "stats/http_endpoint.h"
#include "targets.h"
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
    "  --metrics-listen H:P  Prometheus /metrics address (default 127.0.0.1:9741; none = off)\n"
    "  --verbose             debug logging\n";

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
  std::string metricsListen = "127.0.0.1:9741";
  FlagReader f(argc, argv, [](const std::string& m) { die(m + "\n" + kUsage); });
  while (f.next()) {
    const std::string& a = f.name();
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
    else if (a == "--threads")
      threads = static_cast<int>(f.number(1, 256));
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
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      die("unknown option " + a + "\n" + kUsage);
    }
  }
  if (users.empty()) users.push_back("qmailr");
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

  signal(SIGPIPE, SIG_IGN);
  asio::io_context io;
  daemon::Runner runner(io);  // before anything is published: see daemon/serve.h
  ConfigStore store;
  stats::Registry registry;
  RemoteMetrics metrics(registry);
  if (auto s = store.reload(home); !s.ok()) die(std::string(s.message()));
  metrics.config.applied(store.current()->generation);
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
        d.resolver = res;
        {
          std::lock_guard<std::mutex> lock(ipmeMu);
          d.ipme = ipme;
        }
        d.mxPort = mxPort;
        d.metrics = &metrics;
        return d;
      },
      maxDeliveries);
  if (auto s = intake.start(); !s.ok()) die(std::string(s.message()));
  // Metrics are an aid, not a reason to stop delivering mail: a port in use is logged.
  stats::HttpEndpoint endpoint(registry);
  if (metricsListen != "none") {
    auto where = endpoint.start(metricsListen);
    if (where.ok())
      log::info(text::cat("metrics listen=", *where));
    else
      log::error(std::string(where.status().message()));
  }

  log::info(text::cat("qtls-remoted started socket=", socketPath, " home=", home,
                      " generation=", store.current()->generation, " threads=", threads));
  daemon::ServeOptions serve;
  serve.threads = threads;
  serve.reload = [&] {
    if (auto s = store.reload(home); !s.ok())
      log::error(text::cat("reload: keeping generation ", store.current()->generation, ": ",
                           std::string(s.message())));
    else
      log::info(
          text::cat("reload: control files loaded, generation ", store.current()->generation));
    std::lock_guard<std::mutex> lock(ipmeMu);
    ipme = std::make_shared<IpMe>(IpMe::fromInterfaces(ipmeExclude));
  };
  serve.stopAccepting = [&] { intake.stop(); };
  serve.inFlight = [&] { return intake.active(); };
  serve.inFlightWhat = "deliveries in flight";
  runner.run(serve);
  log::info("qtls-remoted stopped");
  return 0;
}
