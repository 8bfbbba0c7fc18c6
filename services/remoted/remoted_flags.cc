// qtls-remoted's command line (remoted_flags.h).
#include "remoted_flags.h"

#include <pwd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "admin/admin_flags.h"
#include "fleet/fleet_flags.h"

namespace qtls::remoted {

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

// --allow-user values (names or uids) as uids; qmailr when none was given.
std::set<uid_t> allowedUids(std::vector<std::string> users) {
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
  return allowed;
}

// One of qtls-remoted's own flags; false when `f` is not one.
bool readOwnFlag(FlagReader& f, RemotedFlags& r, std::vector<std::string>& users) {
  const std::string& a = f.name();
  if (a == "--socket")
    r.socketPath = f.value();
  else if (a == "--allow-user")
    users.push_back(f.value());
  else if (a == "--dns-server")
    r.dns.servers = f.value();
  else if (a == "--dns-timeout-ms")
    r.dns.timeoutMs = static_cast<int>(f.number(1, 600000));
  else if (a == "--mx-port")
    r.mxPort = static_cast<unsigned>(f.number(1, 65535));
  else if (a == "--max-deliveries")
    r.maxDeliveries = static_cast<int>(f.number(1, 1000000));
  else if (a == "--delivery-limit")
    r.deliveryLimit = f.number(1, 86400);
  else if (a == "--ipme-exclude") {
    std::string v = f.value();
    std::error_code ec;
    auto addr = asio::ip::make_address(v, ec);
    if (ec) die("--ipme-exclude: not an IP address: " + v);
    r.ipmeExclude.push_back(addr);
  } else
    return false;
  return true;
}

}  // namespace

void die(const std::string& msg) {
  std::fprintf(stderr, "qtls-remoted: fatal: %s\n", msg.c_str());
  std::exit(111);
}

RemotedFlags parseRemotedFlags(int argc, char** argv) {
  RemotedFlags r;
  r.common.metricsListen = "127.0.0.1:9741";
  r.common.drainSeconds = 60;
  std::vector<std::string> users;
  FlagReader f(argc, argv, [](const std::string& m) { die(m + "\n" + kUsage); });
  while (f.next()) {
    const std::string& a = f.name();
    if (daemon::readCommonFlag(f, r.common) || readConnFlag(f, r.conn) || readOwnFlag(f, r, users))
      continue;
    if (a == "--version") {
      std::printf("%s %s\n", "qtls-remoted", QTLS_VERSION);
      std::exit(0);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::fputs(kConnUsage, stdout);
      std::fputs(admin::kAdminUsage, stdout);
      std::fputs(fleet::kFleetUsage, stdout);
      std::exit(0);
    }
    die("unknown option " + a + "\n" + kUsage);
  }
  r.allowed = allowedUids(std::move(users));
  admin::adminDefaults(r.common.admin, "remoted");
  return r;
}

}  // namespace qtls::remoted
