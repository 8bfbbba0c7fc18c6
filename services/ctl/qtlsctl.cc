// qtlsctl: the operator's command line over the daemons' admin gRPC API (docs/admin-api.md)
// and the fleet in etcd (docs/fleet.md). This file: the usage text and the dispatch.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cli.h"
#include "client.h"
#include "confine.h"
#include "fleet_cmd.h"
#include "observe_cmd.h"
#include "policy_cmd.h"
#include "shim_cmd.h"

namespace {

const char kUsageText[] =
    "usage: qtlsctl [--target T] [--cert F --key F --ca F [--server-name N]] [--json]\n"
    "               [--timeout SECONDS] COMMAND ...\n"
    "  --target T   unix:///run/qtls/remoted-admin.sock (default, or $QTLS_TARGET),\n"
    "               unix:///run/qtls-smtpd/admin.sock, or host:port (mutual TLS)\n"
    "commands:\n"
    "  policy get [--out DIR]              show the policy in force; --out writes its files\n"
    "  policy diff --from DIR              what applying DIR as the whole policy would change\n"
    "  policy apply --from DIR             make DIR (control/ layout) the whole policy\n"
    "  policy apply [--put PATH=FILE]... [--remove PATH]...   change some files\n"
    "         [--expect-generation N] [--expect-digest sha256:HEX] [--reason TEXT] [--dry-run]\n"
    "  policy rollback [--to N] [--expect-generation N] [--expect-digest sha256:HEX]\n"
    "         [--reason TEXT] [--dry-run]\n"
    "  policy resolve DOMAIN [--mx HOST]   outbound: the level a delivery gets, and why\n"
    "  policy resolve --client ADDR [--cert-email E] [--rcpt ADDR]   inbound: relay, rcpthosts\n"
    "  stats [--prefix NAME]               counters and histograms\n"
    "  watch [--direction in|out] [--count N]   one line per TLS session as it ends\n"
    "  health                              SERVING (exit 0) or NOT_SERVING (exit 1)\n"
    "  confine --daemon qtls-remoted|qtls-smtpd --policy-dir DIR --owner USER\n"
    "         [--qmail-home /var/qmail] [--dry-run]   (as root) move the daemon's policy files\n"
    "         into DIR, owned by USER, and leave symlinks in control/ (docs/operations.md)\n"
    "  shim install|uninstall --qmail-home DIR [--rspawn] [--from /usr/lib/qtls]\n"
    "         (as root) put qtls-remote (and qtls-rspawn) in place of bin/qmail-remote (and\n"
    "         bin/qmail-rspawn), keeping the originals as .orig; uninstall puts them back\n"
    "  fleet [--etcd URLS] [--etcd-ca F --etcd-cert F --etcd-key F] [--prefix /qtls] ...\n"
    "         (or $QTLS_ETCD, $QTLS_ETCD_CA, ...; docs/fleet.md)\n"
    "    bundle --component remote|smtpd --from DIR   store DIR as a bundle; prints its digest\n"
    "    target --component C --node N (--digest D [--provisional] | --clear)\n"
    "    status --component C                one line per node: ACK/NACK, digests, drift\n"
    "    adopt --component C --node NAME[=TARGET]... [--force]   each node's policy in force\n"
    "         (read over its admin API, --target when no TARGET) becomes its target\n"
    "    prune --component C [--keep-rollouts 5] [--min-age 1h] [--apply]   bundles nothing\n"
    "         names: a dry run unless --apply\n"
    "  rollout [--etcd ...] start --component C (--from DIR | --digest D)\n"
    "         [--waves 1,5%,25%,100%] [--soak 60s] [--report-only-first 60s] [--ack-timeout 60s]\n"
    "         [--prometheus URL --gate NAME[:MAX[:PROMQL]]... [--report-only-gate would_fail]\n"
    "         [--interval 10s] [--count 3] [--failure-limit 1]] [--nodes N,...] [--detach]\n"
    "         [--on-node-loss pause|rollback]\n"
    "  rollout [--etcd ...] status|pause|resume|abort|promote --component C\n"
    "  rollout [--etcd ...] watch --component C [--plain]   live view until it ends\n"
    "  help [COMMAND]                      this text, or one command's part of it\n"
    "  (and COMMAND --help; --version)\n"
    "exit codes: 0 ok, 1 not serving, 2 usage, 3 daemon unreachable, 4 change refused as\n"
    "invalid, 5 conflict (read again, retry), 6 permission denied, 7 other error,\n"
    "8 refused for now (hand edit pending, cannot write: fix that before retrying),\n"
    "9 the rollout stopped before it was done (paused, rolled back; the reason is printed)\n";

// One command's lines of the usage text: its entries and their continuation lines.
std::string commandHelp(const std::string& cmd) {
  std::string out, line;
  bool in = false;
  const std::string text = kUsageText;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    line = text.substr(pos, nl - pos + 1);
    pos = nl + 1;
    const bool entry = line.rfind("  " + cmd + " ", 0) == 0 || line == "  " + cmd + "\n";
    const bool more = line.rfind("    ", 0) == 0;  // a continuation or a subcommand
    if (entry || (in && more)) {
      out += line;
      in = true;
    } else {
      in = false;
    }
  }
  return out;
}

}  // namespace

namespace qtls::ctl {
[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr, "qtlsctl: %s\n%s", msg.c_str(), kUsageText);
  std::exit(kUsage);
}
}  // namespace qtls::ctl

using namespace qtls::ctl;

namespace {

// The options before the command; returns the index of the command word. --help and
// --version answer and exit.
int readOptions(int argc, char** argv, Options& o) {
  const char* env = std::getenv("QTLS_TARGET");
  o.target = env ? env : "unix:///run/qtls/remoted-admin.sock";
  int i = 1;
  auto value = [&](const std::string& flag) -> std::string {
    if (i + 1 >= argc) usage(flag + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--target")
      o.target = value(a);
    else if (a == "--cert")
      o.cert = value(a);
    else if (a == "--key")
      o.key = value(a);
    else if (a == "--ca")
      o.ca = value(a);
    else if (a == "--server-name")
      o.serverName = value(a);
    else if (a == "--json")
      o.json = true;
    else if (a == "--timeout")
      o.timeout = static_cast<int>(number(a, value(a)));
    else if (a == "--help" || a == "-h") {
      std::fputs(kUsageText, stdout);
      std::exit(kOk);
    } else if (a == "--version") {
      std::printf("qtlsctl %s\n", QTLS_VERSION);
      std::exit(kOk);
    } else if (a.rfind("--", 0) == 0)
      usage("unknown option " + a);
    else
      break;
  }
  return i;
}

// "help COMMAND" and "COMMAND ... --help": that command's part of the usage text. False when
// the words ask for no help.
bool help(const std::vector<std::string>& words) {
  const std::string& cmd = words[0];
  std::string helpFor;
  if (cmd == "help") {
    if (words.size() < 2) {
      std::fputs(kUsageText, stdout);
      return true;
    }
    helpFor = words[1];
  } else {
    for (const std::string& w : words)
      if (w == "--help" || w == "-h") helpFor = cmd;
  }
  if (helpFor.empty()) return false;
  const std::string h = commandHelp(helpFor);
  if (h.empty()) usage("no command " + helpFor);
  std::printf("usage: qtlsctl [options] ...\n%s", h.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const int i = readOptions(argc, argv, o);
  if (i >= argc) usage("no command");
  std::vector<std::string> words(argv + i, argv + argc);
  Args rest;
  auto after = [&](size_t n) {
    rest.v.assign(words.begin() + static_cast<long>(n), words.end());
    return std::ref(rest);
  };
  const std::string& cmd = words[0];
  if (help(words)) return kOk;
  if (cmd == "confine") return confine(after(1));  // local files; no daemon involved
  if (cmd == "shim") return shimCommand(after(1));
  if (cmd == "fleet") return fleetCommand(after(1), o, false);  // etcd (adopt: and daemons)
  if (cmd == "rollout") return fleetCommand(after(1), o, true);
  Client c(o);
  if (cmd == "policy") {
    if (words.size() < 2) usage("policy: get, diff, apply, rollback or resolve");
    const std::string& sub = words[1];
    if (sub == "get") return policyGet(c, o, after(2));
    if (sub == "diff") return policyApply(c, o, after(2), true);
    if (sub == "apply") return policyApply(c, o, after(2), false);
    if (sub == "rollback") return policyRollback(c, o, after(2));
    if (sub == "resolve") return policyResolve(c, o, after(2));
    usage("policy: unknown subcommand " + sub);
  }
  if (cmd == "stats") return stats(c, o, after(1));
  if (cmd == "watch") return watch(c, o, after(1));
  if (cmd == "health") return health(c, o, after(1));
  usage("unknown command " + cmd);
}
