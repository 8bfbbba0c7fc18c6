// qtlsctl: the operator's command line over the daemons' admin gRPC API (docs/admin-api.md).
#include <dirent.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "admin/policy_store.h"
#include "cli.h"
#include "confine.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "output.h"
#include "policy_dir.h"
#include "qtls/v1/metrics.grpc.pb.h"
#include "qtls/v1/policy.grpc.pb.h"

namespace {

namespace v1 = qtls::v1;

const char kUsageText[] =
    "usage: qtlsctl [--target T] [--cert F --key F --ca F [--server-name N]] [--json]\n"
    "               [--timeout SECONDS] COMMAND ...\n"
    "  --target T   unix:///run/qtls/remoted-admin.sock (default, or $QTLS_TARGET),\n"
    "               unix:///run/qtls/smtpd-admin.sock, or host:port (mutual TLS)\n"
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
    "exit codes: 0 ok, 1 not serving, 2 usage, 3 daemon unreachable, 4 change refused as\n"
    "invalid, 5 conflict (read again, retry), 6 permission denied, 7 other error,\n"
    "8 refused for now (hand edit pending, cannot write: fix that before retrying)\n";

struct Options {
  std::string target, cert, key, ca, serverName;
  bool json = false;
  int timeout = 30;
};

}  // namespace

namespace qtls::ctl {
[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr, "qtlsctl: %s\n%s", msg.c_str(), kUsageText);
  std::exit(kUsage);
}
}  // namespace qtls::ctl

namespace {
using namespace qtls::ctl;

std::string codeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "code " + std::to_string(static_cast<int>(c));
  }
}

int exitFor(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return kOk;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kUnreachable;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
      return kInvalid;
    case grpc::StatusCode::ABORTED:
      return kConflict;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kRefused;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return kDenied;
    default:
      return kOther;
  }
}

int fail(const Options& o, const grpc::Status& s) {
  std::fprintf(stderr, "qtlsctl: %s: %s: %s\n", o.target.c_str(), codeName(s.error_code()).c_str(),
               s.error_message().c_str());
  return exitFor(s);
}

class Client {
 public:
  explicit Client(const Options& o) : o_(o) {
    std::shared_ptr<grpc::ChannelCredentials> creds;
    std::string addr = o.target;
    grpc::ChannelArguments args;
    // A whole policy is one message, up to 64 MiB (docs/admin-api.md, "Limits").
    args.SetMaxReceiveMessageSize(qtls::admin::PolicyStore::kMaxMessageBytes);
    args.SetMaxSendMessageSize(qtls::admin::PolicyStore::kMaxMessageBytes);
    if (addr.rfind("unix:", 0) == 0) {
      creds = grpc::InsecureChannelCredentials();
    } else {
      if (o.cert.empty() || o.key.empty() || o.ca.empty())
        usage("a TCP target needs --cert, --key and --ca: the admin API over TCP is mutual TLS");
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = readFile(o.ca);
      ssl.pem_private_key = readFile(o.key);
      ssl.pem_cert_chain = readFile(o.cert);
      creds = grpc::SslCredentials(ssl);
      if (!o.serverName.empty()) args.SetSslTargetNameOverride(o.serverName);
    }
    channel_ = grpc::CreateCustomChannel(addr, creds, args);
    policy_ = v1::PolicyService::NewStub(channel_);
    metrics_ = v1::TlsMetricsService::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> context(bool stream = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!stream)
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o_.timeout));
    const char* who = std::getenv("SUDO_USER");
    if (who == nullptr) who = std::getenv("USER");
    std::string name = who ? who : "";
    if (name.empty())
      if (struct passwd* pw = getpwuid(getuid())) name = pw->pw_name;
    if (!name.empty()) ctx->AddMetadata("x-qtls-operator", name);
    return ctx;
  }

  v1::PolicyService::Stub& policy() { return *policy_; }
  v1::TlsMetricsService::Stub& metrics() { return *metrics_; }
  grpc::health::v1::Health::Stub& health() { return *health_; }

 private:
  const Options& o_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::PolicyService::Stub> policy_;
  std::unique_ptr<v1::TlsMetricsService::Stub> metrics_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// Arguments after the command words.
uint64_t number(const std::string& flag, const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    usage(flag + ": not a number: " + v);
  return std::strtoull(v.c_str(), nullptr, 10);
}

int conflict(Client& c, const Options& o, const grpc::Status& s, uint64_t expected) {
  v1::GetPolicyResponse now;
  auto ctx = c.context();
  if (c.policy().GetPolicy(ctx.get(), {}, &now).ok())
    std::fprintf(stderr,
                 "qtlsctl: generation conflict: this change was made against generation %llu, "
                 "but generation %llu is in force now.\n"
                 "Someone changed the policy in between. Look at it again (qtlsctl policy get, "
                 "qtlsctl policy diff) and reapply your change to generation %llu.\n",
                 static_cast<unsigned long long>(expected),
                 static_cast<unsigned long long>(now.generation()),
                 static_cast<unsigned long long>(now.generation()));
  else
    fail(o, s);
  return kConflict;
}

// The answer to ApplyPolicy or Rollback, for people or scripts.
int finishChange(Client& c, const Options& o, const grpc::Status& s,
                 const v1::PolicyChangeResult& r, uint64_t expected, bool dryRun) {
  if (s.error_code() == grpc::StatusCode::ABORTED &&
      s.error_message().find("generation conflict") != std::string::npos)
    return conflict(c, o, s, expected);
  if (!s.ok()) return fail(o, s);
  if (o.json)
    printJson(r);
  else
    printChanges(r, dryRun);
  return kOk;
}

int policyGet(Client& c, const Options& o, Args& a) {
  std::string out;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--out")
      out = a.next(f);
    else
      usage("policy get: unknown argument " + f);
  }
  v1::GetPolicyResponse r;
  auto ctx = c.context();
  grpc::Status s = c.policy().GetPolicy(ctx.get(), {}, &r);
  if (!s.ok()) return fail(o, s);
  if (!out.empty())
    if (int rc = mirrorInto(out, r); rc != kOk) return rc;
  if (o.json) {
    printJson(r);
    return kOk;
  }
  std::printf("%s generation %llu digest %s\n", r.daemon().c_str(),
              static_cast<unsigned long long>(r.generation()), r.digest().c_str());
  std::printf("%-44s %-16s %-12s %8s\n", "PATH", "KIND", "SHA256", "BYTES");
  for (const auto& it : r.items())
    std::printf("%-44s %-16s %-12.12s %8zu%s\n", it.path().c_str(), kindWord(it.kind()).c_str(),
                it.sha256().c_str(), it.content().size(), it.redacted() ? " (key not shown)" : "");
  if (r.history_size()) {
    std::printf("earlier generations kept for rollback:");
    for (auto g : r.history()) std::printf(" %llu", static_cast<unsigned long long>(g));
    std::printf("\n");
  }
  return kOk;
}

int policyApply(Client& c, const Options& o, Args& a, bool diffOnly) {
  v1::ApplyPolicyRequest req;
  std::string from;
  bool haveExpect = false;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--from")
      from = a.next(f);
    else if (f == "--put" && !diffOnly) {
      std::string v = a.next(f);
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0) usage("--put wants PATH=FILE, got " + v);
      auto* it = req.add_put();
      it->set_path(v.substr(0, eq));
      it->set_content(readFile(v.substr(eq + 1)));
    } else if (f == "--remove" && !diffOnly)
      req.add_remove(a.next(f));
    else if (f == "--expect-generation") {
      req.set_expected_generation(number(f, a.next(f)));
      haveExpect = true;
    } else if (f == "--expect-digest") {
      req.set_expected_digest(a.next(f));
      haveExpect = true;
    } else if (f == "--reason")
      req.set_reason(a.next(f));
    else if (f == "--dry-run")
      req.set_dry_run(true);
    else
      usage("policy " + std::string(diffOnly ? "diff" : "apply") + ": unknown argument " + f);
  }
  if (diffOnly && from.empty()) usage("policy diff needs --from DIR");
  if (from.empty() && req.put_size() == 0 && req.remove_size() == 0)
    usage("policy apply needs --from DIR, or --put/--remove");
  if (!from.empty() && (req.put_size() || req.remove_size()))
    usage("--from gives the whole policy; do not mix it with --put or --remove");
  if (diffOnly) req.set_dry_run(true);
  if (!from.empty() && !haveExpect && !diffOnly) {
    // The generation the directory was read at (policy get --out), so that a change made
    // since then is a conflict, not silently reverted.
    std::ifstream g(from + "/.qtls-generation");
    std::string line;
    if (!std::getline(g, line))
      usage("policy apply --from " + from + " needs --expect-generation N (the generation " +
            "you reviewed), or a directory written by `qtlsctl policy get --out`");
    req.set_expected_generation(number(from + "/.qtls-generation", line));
    haveExpect = true;
  }
  if (!haveExpect || !from.empty()) {
    v1::GetPolicyResponse cur;
    auto ctx = c.context();
    grpc::Status s = c.policy().GetPolicy(ctx.get(), {}, &cur);
    if (!s.ok()) return fail(o, s);
    if (!haveExpect) req.set_expected_generation(cur.generation());
    if (!from.empty()) {
      // DIR is the whole policy: put what differs, remove what DIR lacks. A file shown
      // without its key (policy get) and left as it was keeps the key on the daemon.
      std::map<std::string, std::string> local = collect(from, cur);
      if (local.empty())
        usage(from + " holds none of the files " + cur.daemon() +
              "'s policy owns; refusing to remove them all (use --remove for that)");
      std::map<std::string, const v1::PolicyItem*> now;
      for (const auto& it : cur.items()) now[it.path()] = &it;
      for (const auto& [path, content] : local) {
        auto n = now.find(path);
        if (n != now.end() && n->second->content() == content) continue;  // unchanged
        auto* it = req.add_put();
        it->set_path(path);
        it->set_content(content);
      }
      for (const auto& [path, item] : now)
        if (!local.count(path)) req.add_remove(path);
      if (req.put_size() == 0 && req.remove_size() == 0) {
        std::printf("no change: %s is generation %llu already\n", from.c_str(),
                    static_cast<unsigned long long>(cur.generation()));
        return kOk;
      }
    }
  }
  v1::PolicyChangeResult r;
  auto ctx = c.context();
  grpc::Status s = c.policy().ApplyPolicy(ctx.get(), req, &r);
  return finishChange(c, o, s, r, req.expected_generation(), req.dry_run());
}

int policyRollback(Client& c, const Options& o, Args& a) {
  v1::RollbackRequest req;
  bool haveExpect = false;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--to")
      req.set_to_generation(number(f, a.next(f)));
    else if (f == "--expect-generation") {
      req.set_expected_generation(number(f, a.next(f)));
      haveExpect = true;
    } else if (f == "--expect-digest") {
      req.set_expected_digest(a.next(f));
      haveExpect = true;
    } else if (f == "--reason")
      req.set_reason(a.next(f));
    else if (f == "--dry-run")
      req.set_dry_run(true);
    else
      usage("policy rollback: unknown argument " + f);
  }
  if (!haveExpect) {
    v1::GetPolicyResponse cur;
    auto ctx = c.context();
    grpc::Status s = c.policy().GetPolicy(ctx.get(), {}, &cur);
    if (!s.ok()) return fail(o, s);
    req.set_expected_generation(cur.generation());
  }
  v1::PolicyChangeResult r;
  auto ctx = c.context();
  grpc::Status s = c.policy().Rollback(ctx.get(), req, &r);
  return finishChange(c, o, s, r, req.expected_generation(), req.dry_run());
}

int policyResolve(Client& c, const Options& o, Args& a) {
  v1::ResolvePolicyRequest req;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--mx")
      req.set_mx_host(a.next(f));
    else if (f == "--client")
      req.set_client_address(a.next(f));
    else if (f == "--cert-email")
      req.set_client_cert_email(a.next(f));
    else if (f == "--rcpt")
      req.set_recipient(a.next(f));
    else if (f.rfind("--", 0) == 0)
      usage("policy resolve: unknown argument " + f);
    else
      req.set_domain(f);
  }
  v1::ResolvePolicyResponse r;
  auto ctx = c.context();
  grpc::Status s = c.policy().ResolvePolicy(ctx.get(), req, &r);
  if (!s.ok()) return fail(o, s);
  if (o.json) {
    printJson(r);
    return kOk;
  }
  if (!req.domain().empty() || !req.mx_host().empty()) {
    std::string level = v1::TlsLevel_Name(r.level());
    if (level.rfind("TLS_LEVEL_", 0) == 0) level = level.substr(10);
    for (char& ch : level) ch = ch == '_' ? '-' : static_cast<char>(std::tolower(ch));
    std::printf("level %s (from %s, generation %llu)\n", level.c_str(), r.source().c_str(),
                static_cast<unsigned long long>(r.generation()));
    std::printf("why: %s\n", r.reason().c_str());
    if (!r.ca_file().empty()) std::printf("ca: %s\n", r.ca_file().c_str());
    for (const auto& n : r.match_names()) std::printf("accepted name: %s\n", n.c_str());
    if (!r.min_version().empty()) std::printf("min version: %s\n", r.min_version().c_str());
    for (const auto& p : r.fingerprints()) std::printf("pin: %s\n", p.c_str());
  } else {
    std::printf("starttls offered: %s\nrelay allowed: %s\n", r.starttls_offered() ? "yes" : "no",
                r.relay_allowed() ? "yes" : "no");
    if (!req.recipient().empty())
      std::printf("recipient accepted: %s\n", r.recipient_accepted() ? "yes" : "no");
    std::printf("why: %s\n", r.reason().c_str());
  }
  return kOk;
}

int stats(Client& c, const Options& o, Args& a) {
  v1::GetStatsRequest req;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--prefix")
      req.set_name_prefix(a.next(f));
    else
      usage("stats: unknown argument " + f);
  }
  v1::GetStatsResponse r;
  auto ctx = c.context();
  grpc::Status s = c.metrics().GetStats(ctx.get(), req, &r);
  if (!s.ok()) return fail(o, s);
  if (o.json) {
    printJson(r);
    return kOk;
  }
  std::printf("%s policy generation %llu, up %.0f s\n", r.daemon().c_str(),
              static_cast<unsigned long long>(r.policy_generation()), r.uptime_seconds());
  for (const auto& f : r.families()) {
    for (const auto& sm : f.samples()) {
      std::string labels;
      for (const auto& l : sm.labels())
        labels += (labels.empty() ? "" : ",") + l.name() + "=" + l.value();
      std::string name = f.name() + (labels.empty() ? "" : "{" + labels + "}");
      if (f.type() == v1::MetricFamily::TYPE_HISTOGRAM)
        std::printf("%-72s count %llu, mean %.4f s\n", name.c_str(),
                    static_cast<unsigned long long>(sm.count()),
                    sm.count() ? sm.sum() / static_cast<double>(sm.count()) : 0.0);
      else
        std::printf("%-72s %.15g\n", name.c_str(), sm.value());
    }
  }
  return kOk;
}

int watch(Client& c, const Options& o, Args& a) {
  v1::WatchSessionsRequest req;
  long count = -1;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--direction") {
      std::string d = a.next(f);
      if (d == "in" || d == "inbound")
        req.set_direction(v1::WatchSessionsRequest::DIRECTION_INBOUND);
      else if (d == "out" || d == "outbound")
        req.set_direction(v1::WatchSessionsRequest::DIRECTION_OUTBOUND);
      else
        usage("--direction: in or out");
    } else if (f == "--count")
      count = static_cast<long>(number(f, a.next(f)));
    else
      usage("watch: unknown argument " + f);
  }
  auto ctx = c.context(true);
  auto reader = c.metrics().WatchSessions(ctx.get(), req);
  v1::SessionRecord rec;
  long n = 0;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  while ((count < 0 || n < count) && reader->Read(&rec)) {
    ++n;
    if (o.json) {
      std::string out;
      google::protobuf::util::JsonPrintOptions opts;
      opts.preserve_proto_field_names = true;
      (void)google::protobuf::util::MessageToJsonString(rec, &out, opts);
      std::printf("%s\n", out.c_str());
      continue;
    }
    if (rec.dropped_before() > 0)
      std::printf("(%llu records lost: this watcher fell behind)\n",
                  static_cast<unsigned long long>(rec.dropped_before()));
    time_t t = static_cast<time_t>(rec.end_time());
    char when[32];
    std::strftime(when, sizeof when, "%H:%M:%S", std::localtime(&t));
    std::printf("%s %-8s %s %s level=%s/%s tls=%s/%s verify=%s outcome=%s %.3fs\n", when,
                rec.direction().c_str(), rec.peer().c_str(),
                rec.domain().empty() ? "-" : rec.domain().c_str(), rec.level_requested().c_str(),
                rec.level_achieved().c_str(), rec.tls_version().c_str(), rec.cipher().c_str(),
                rec.verify().c_str(), rec.outcome().c_str(), rec.duration_seconds());
  }
  if (count >= 0 && n >= count) {
    ctx->TryCancel();
    return kOk;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return fail(o, s);
  return kOk;
}

int health(Client& c, const Options& o, Args& a) {
  grpc::health::v1::HealthCheckRequest req;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--service")
      req.set_service(a.next(f));
    else
      usage("health: unknown argument " + f);
  }
  grpc::health::v1::HealthCheckResponse r;
  auto ctx = c.context();
  grpc::Status s = c.health().Check(ctx.get(), req, &r);
  if (!s.ok()) return fail(o, s);
  if (o.json) {
    printJson(r);
  } else {
    std::printf("%s\n",
                grpc::health::v1::HealthCheckResponse::ServingStatus_Name(r.status()).c_str());
  }
  return r.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kOk : kNotServing;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
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
      return kOk;
    } else if (a.rfind("--", 0) == 0)
      usage("unknown option " + a);
    else
      break;
  }
  if (i >= argc) usage("no command");
  std::vector<std::string> words(argv + i, argv + argc);
  Args rest;
  auto after = [&](size_t n) {
    rest.v.assign(words.begin() + static_cast<long>(n), words.end());
    return std::ref(rest);
  };
  const std::string& cmd = words[0];
  if (cmd == "confine") return confine(after(1));  // local files; no daemon involved
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
