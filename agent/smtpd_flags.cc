// qtls-smtpd's command line (smtpd_flags.h).
#include "smtpd_flags.h"

#include <cstdio>
#include <cstdlib>

#include "admin/admin_flags.h"
#include "fleet/fleet_flags.h"

namespace qtls::agent {

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
    "                          (default 500; 0 = at SIGHUP only)\n"
    "  --verbose               debug logging\n";

// One of the connection flags; false when `f` is not one.
bool readLimitFlag(FlagReader& f, ConnectionLimits& limits) {
  const std::string& a = f.name();
  if (a == "--max-connections")
    limits.maxConnections = static_cast<int>(f.number(1, 1000000));
  else if (a == "--max-per-client")
    limits.maxPerClient = static_cast<int>(f.number(1, 1000000));
  else if (a == "--ipv6-prefix")
    limits.ipv6Prefix = static_cast<int>(f.number(1, 128));
  else if (a == "--reserve-ipv6-prefix")
    limits.reserveIpv6Prefix = static_cast<int>(f.number(1, 128));
  else if (a == "--reserve-percent")
    limits.reservePercent = static_cast<int>(f.number(0, 90));
  else if (a == "--evict-idle")
    limits.evictAfterIdle = std::chrono::seconds(f.number(0, 86400));
  else
    return false;
  return true;
}

// One of the session flags; false when `f` is not one.
bool readSessionFlag(FlagReader& f, SessionLimits& s) {
  const std::string& a = f.name();
  if (a == "--max-junk-commands")
    s.maxJunkCommands = static_cast<size_t>(f.number(1, 1L << 30));
  else if (a == "--command-timeout")
    s.commandTimeout = std::chrono::seconds(f.number(1, 86400));
  else if (a == "--data-min-rate")
    s.dataMinRate = static_cast<size_t>(f.number(1, 1L << 30));
  else if (a == "--data-grace")
    s.dataGrace = std::chrono::seconds(f.number(0, 86400));
  else if (a == "--max-line")
    s.maxLine = static_cast<size_t>(f.number(512, 1 << 20));
  else if (a == "--max-recipients")
    s.maxRecipients = static_cast<size_t>(f.number(1, 1000000));
  else if (a == "--max-message")
    s.maxMessage = static_cast<size_t>(f.number());
  else
    return false;
  return true;
}

}  // namespace

void die(const std::string& msg) {
  std::fprintf(stderr, "qtls-smtpd: fatal: %s\n", msg.c_str());
  std::exit(111);
}

SmtpdFlags parseSmtpdFlags(int argc, char** argv) {
  SmtpdFlags r;
  r.common.metricsListen = "127.0.0.1:9742";
  r.common.drainSeconds = 30;
  FlagReader f(argc, argv, [](const std::string& m) { die(m + "\n" + kUsage); });
  while (f.next()) {
    const std::string& a = f.name();
    if (daemon::readCommonFlag(f, r.common) || readLimitFlag(f, r.limits) ||
        readSessionFlag(f, r.sessionLimits))
      continue;
    if (a == "--listen") {
      auto spec = parseListenerSpec(f.value());
      if (!spec.ok()) die(std::string(spec.status().message()));
      r.specs.push_back(*spec);
    } else if (a == "--qmail-queue") {
      r.queue = f.value();
    } else if (a == "--version") {
      std::printf("qtls-smtpd %s\n", QTLS_VERSION);
      std::exit(0);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::fputs(admin::kAdminUsage, stdout);
      std::fputs(fleet::kFleetUsage, stdout);
      std::exit(0);
    } else {
      die("unknown option " + a + "\n" + kUsage);
    }
  }
  if (r.queue.empty()) r.queue = r.common.home + "/bin/qmail-queue";
  admin::adminDefaults(r.common.admin, "smtpd");
  return r;
}

}  // namespace qtls::agent
