// qtlsctl's policy commands (policy_cmd.h).
#include "policy_cmd.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "output.h"
#include "policy_dir.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;
namespace {

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

// The flags ApplyPolicy and Rollback share: what the change expects, why, and dry runs.
template <typename Request>
bool changeFlag(const std::string& f, Args& a, Request& req, bool& haveExpect) {
  if (f == "--expect-generation") {
    req.set_expected_generation(number(f, a.next(f)));
    haveExpect = true;
  } else if (f == "--expect-digest") {
    req.set_expected_digest(a.next(f));
    haveExpect = true;
  } else if (f == "--reason") {
    req.set_reason(a.next(f));
  } else if (f == "--dry-run") {
    req.set_dry_run(true);
  } else {
    return false;
  }
  return true;
}

}  // namespace

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
    else if (!changeFlag(f, a, req, haveExpect))
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
    else if (!changeFlag(f, a, req, haveExpect))
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

}  // namespace qtls::ctl
