// qtlsctl fleet: the fleet's state in etcd (docs/fleet.md).
#include "fleet_cmd.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>
#include <string>

#include "fleet/layout.h"
#include "fleet_adopt.h"
#include "fleet_prune.h"
#include "output.h"
#include "policy_dir.h"
#include "qtls/v1/fleet.pb.h"
#include "rollout_cmd.h"
#include "util/text.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;

int exitFor(const absl::Status& s) { return exitForCode(static_cast<int>(s.code())); }

int failed(const absl::Status& s) {
  std::fprintf(stderr, "qtlsctl: %s\n", std::string(s.message()).c_str());
  return exitFor(s);
}

std::string shortDigest(const std::string& d) {
  return d.size() > 19 ? d.substr(0, 19) : (d.empty() ? "-" : d);
}

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The files of DIR that `component`'s policy owns, read as `policy apply --from` reads them.
std::map<std::string, std::string> readPolicyDir(const std::string& dir,
                                                 const std::string& component) {
  admin::Schema schema = component == "remote" ? admin::remotedSchema() : admin::smtpdSchema();
  v1::GetPolicyResponse owned;
  owned.set_daemon(schema.daemon);
  for (const admin::Rule& r : schema.rules) owned.add_owned_patterns(r.pattern());
  return collect(dir, owned);
}

std::string componentArg(Args& a, const std::string& flag) {
  std::string c = a.next(flag);
  if (!fleet::validComponent(c)) usage(flag + ": remote or smtpd, not " + c);
  return c;
}

int bundle(FleetContext& f, Args& a) {
  std::string component, from;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--component")
      component = componentArg(a, flag);
    else if (flag == "--from")
      from = a.next(flag);
    else
      usage("fleet bundle: unknown argument " + flag);
  }
  if (component.empty() || from.empty()) usage("fleet bundle needs --component and --from DIR");
  auto digest = storeBundle(f, component, from);
  if (!digest.ok()) return failed(digest.status());
  std::printf("%s\n", digest->c_str());
  return kOk;
}

int target(FleetContext& f, Args& a) {
  std::string component, node, digest;
  bool clear = false, provisional = false;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--component")
      component = componentArg(a, flag);
    else if (flag == "--node")
      node = a.next(flag);
    else if (flag == "--digest")
      digest = a.next(flag);
    else if (flag == "--provisional")
      provisional = true;
    else if (flag == "--clear")
      clear = true;
    else
      usage("fleet target: unknown argument " + flag);
  }
  if (component.empty() || node.empty() || (digest.empty() == !clear))
    usage("fleet target needs --component, --node and --digest D (or --clear)");
  if (!fleet::validNodeName(node)) usage("--node: not a valid host name: " + node);
  const std::string key = f.layout.target(component, node);
  if (clear) {
    if (auto s = f.etcd().remove(key); !s.ok()) return failed(s);
    std::printf("cleared %s\n", key.c_str());
    return kOk;
  }
  // A target must name a bundle that exists, or the node could only NACK it.
  auto b = f.etcd().get(f.layout.bundle(component, digest));
  if (!b.ok()) return failed(b.status());
  if (!*b)
    return failed(absl::NotFoundError(
        text::cat("no bundle ", digest, " for ", component, "; store one with fleet bundle")));
  v1::FleetTarget t;
  t.set_digest(digest);
  t.set_provisional(provisional);
  if (auto s = f.etcd().put(key, fleet::toJson(t)); !s.ok()) return failed(s);
  std::printf("%s -> %s\n", key.c_str(), digest.c_str());
  return kOk;
}

}  // namespace

absl::StatusOr<std::vector<NodeView>> fleetView(FleetContext& f, const std::string& component) {
  std::map<std::string, NodeView> nodes;
  auto targets = f.etcd().list(f.layout.nodes(component));
  if (!targets.ok()) return targets.status();
  for (const auto& kv : *targets) {
    const std::string node = f.layout.nodeOf(component, kv.key);
    if (kv.key != f.layout.target(component, node)) continue;
    NodeView& n = nodes[node];
    n.node = node;
    n.hasTarget = true;
    fleet::fromJson(kv.value, &n.target, kv.key).IgnoreError();
  }
  auto statuses = f.etcd().list(f.layout.statuses(component));
  if (!statuses.ok()) return statuses.status();
  for (const auto& kv : *statuses) {
    const std::string node = f.layout.nodeOf(component, kv.key);
    NodeView& n = nodes[node];
    n.node = node;
    n.hasStatus = fleet::fromJson(kv.value, &n.status, kv.key).ok();
  }
  std::vector<NodeView> out;
  for (auto& [name, n] : nodes) out.push_back(std::move(n));
  return out;
}

absl::StatusOr<std::string> storeBundle(FleetContext& f, const std::string& component,
                                        const std::string& dir) {
  auto items = readPolicyDir(dir, component);
  if (items.empty())
    return absl::InvalidArgumentError(
        text::cat(dir, " holds none of the files the ", component, " policy owns"));
  return fleet::putBundle(f.etcd(), f.layout, component, items, f.who);
}

namespace {

int status(FleetContext& f, Args& a, bool json) {
  std::string component;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--component")
      component = componentArg(a, flag);
    else
      usage("fleet status: unknown argument " + flag);
  }
  if (component.empty()) usage("fleet status needs --component remote|smtpd");
  auto view = fleetView(f, component);
  if (!view.ok()) return failed(view.status());
  std::map<std::string, int> applied;
  int nacks = 0, silent = 0, drifted = 0;
  const double now = static_cast<double>(std::time(nullptr));
  if (!json)
    std::printf("%-24s %-9s %-19s %-19s %5s %-5s %5s  %s\n", "NODE", "ACK", "TARGET", "APPLIED",
                "GEN", "DRIFT", "AGE", "ERROR");
  for (const NodeView& n : *view) {
    if (!n.hasStatus) ++silent;
    if (n.hasStatus) {
      ++applied[n.status.applied_digest()];
      if (n.status.ack() == v1::FleetStatus::NACK) ++nacks;
      if (n.status.drift()) ++drifted;
    }
    if (json) continue;
    const std::string ack =
        n.hasStatus ? v1::FleetStatus::Ack_Name(n.status.ack()) : std::string("SILENT");
    std::printf("%-24s %-9s %-19s %-19s %5llu %-5s %4.0fs  %s\n", n.node.c_str(), ack.c_str(),
                shortDigest(n.hasTarget ? n.target.digest() : "").c_str(),
                shortDigest(n.status.applied_digest()).c_str(),
                static_cast<unsigned long long>(n.status.applied_generation()),
                n.hasStatus ? (n.status.drift() ? "yes" : "no") : "-",
                n.hasStatus ? now - n.status.time() : 0.0, n.status.error().c_str());
  }
  if (json) {
    std::printf("{\"component\":\"%s\",\"nodes\":[", component.c_str());
    bool first = true;
    for (const NodeView& n : *view) {
      std::printf("%s{\"node\":\"%s\",\"target\":%s,\"status\":%s}", first ? "" : ",",
                  n.node.c_str(), n.hasTarget ? fleet::toJson(n.target).c_str() : "null",
                  n.hasStatus ? fleet::toJson(n.status).c_str() : "null");
      first = false;
    }
    std::printf("],\"applied\":{");
    first = true;
    for (const auto& [d, count] : applied) {
      std::printf("%s\"%s\":%d", first ? "" : ",", d.c_str(), count);
      first = false;
    }
    std::printf("},\"nack\":%d,\"silent\":%d,\"drifted\":%d}\n", nacks, silent, drifted);
    return kOk;
  }
  std::printf("applied:");
  for (const auto& [d, count] : applied) std::printf(" %s x%d", shortDigest(d).c_str(), count);
  std::printf("\nnack: %d, silent: %d, drifted: %d\n", nacks, silent, drifted);
  return kOk;
}

// `fleet prune`: what would go, then (--apply) deleting it.
int prune(FleetContext& f, Args& a) {
  std::string component;
  PruneOptions o;
  bool apply = false;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--component")
      component = componentArg(a, flag);
    else if (flag == "--keep-rollouts")
      o.keepRollouts = number(flag, a.next(flag));
    else if (flag == "--min-age")
      o.minAgeSeconds = duration(flag, a.next(flag));
    else if (flag == "--apply")
      apply = true;
    else
      usage("fleet prune: unknown argument " + flag);
  }
  if (component.empty()) usage("fleet prune needs --component remote|smtpd");
  const double now = static_cast<double>(std::time(nullptr));
  auto plan = planPrune(f, component, o, now);
  if (!plan.ok()) return failed(plan.status());
  auto show = [](const char* verb, const PrunePlan::Bundle& b) {
    const std::time_t t = static_cast<std::time_t>(b.created);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    std::printf("%s bundle %s (%llu bytes, stored %s by %s)\n", verb, b.digest.c_str(),
                static_cast<unsigned long long>(b.bytes), when,
                b.createdBy.empty() ? "-" : b.createdBy.c_str());
  };
  if (!apply) {
    for (const PrunePlan::Bundle& b : plan->remove) show("would delete", b);
    for (const std::string& id : plan->records)
      std::printf("would delete rollout record %s\n", id.c_str());
  }
  std::printf(
      "kept: %zu bundle(s) a target, a candidate or the last %zu rollout(s) name, %zu "
      "younger than %g s\n",
      plan->kept, o.keepRollouts, plan->young, o.minAgeSeconds);
  if (!apply) {
    std::printf(
        "dry run: %zu bundle(s) and %zu rollout record(s) would be deleted; --apply "
        "deletes them\n",
        plan->remove.size(), plan->records.size());
    return kOk;
  }
  size_t skipped = 0;
  auto removed = applyPrune(f, component, *plan, &skipped,
                            [&](const PrunePlan::Bundle& b) { show("deleted", b); });
  if (!removed.ok()) return failed(removed.status());
  std::printf("deleted %zu bundle(s) and %zu rollout record(s)\n", *removed,
              skipped ? 0 : plan->records.size());
  if (skipped) {
    std::fprintf(stderr,
                 "qtlsctl: %zu bundle(s) left because a target or rollout changed meanwhile: run "
                 "it again\n",
                 skipped);
    return kConflict;
  }
  return kOk;
}

}  // namespace

fleet::Etcd& FleetContext::etcd() {
  if (!etcd_) {
    auto opts = fleet::parseEtcdOptions(endpoints, ca, cert, key);
    if (!opts.ok()) usage(std::string(opts.status().message()));
    auto e = fleet::Etcd::connect(*opts);
    if (!e.ok()) {
      failed(e.status());
      std::exit(exitFor(e.status()));
    }
    etcd_ = std::move(*e);
  }
  return *etcd_;
}

int fleetCommand(Args& a, const Options& admin, bool rollout) {
  const bool json = admin.json;
  FleetContext f;
  f.endpoints = env("QTLS_ETCD");
  f.ca = env("QTLS_ETCD_CA");
  f.cert = env("QTLS_ETCD_CERT");
  f.key = env("QTLS_ETCD_KEY");
  std::string prefix = std::getenv("QTLS_FLEET_PREFIX") ? env("QTLS_FLEET_PREFIX") : "/qtls";
  f.json = json;
  const char* who = std::getenv("SUDO_USER");
  if (who == nullptr) who = std::getenv("USER");
  f.who = who ? who : "qtlsctl";
  std::string sub;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--etcd")
      f.endpoints = a.next(flag);
    else if (flag == "--etcd-ca")
      f.ca = a.next(flag);
    else if (flag == "--etcd-cert")
      f.cert = a.next(flag);
    else if (flag == "--etcd-key")
      f.key = a.next(flag);
    else if (flag == "--prefix")
      prefix = a.next(flag);
    else {
      sub = flag;
      break;
    }
  }
  if (f.endpoints.empty()) usage("--etcd URLS (or $QTLS_ETCD)");
  f.layout = fleet::Layout(prefix);
  if (rollout) return rolloutCommand(f, sub, a, json);
  if (sub == "bundle") return bundle(f, a);
  if (sub == "target") return target(f, a);
  if (sub == "status") return status(f, a, json);
  if (sub == "adopt") return adoptCommand(f, admin, a);
  if (sub == "prune") return prune(f, a);
  usage("fleet: bundle, target, status, adopt or prune, not \"" + sub + "\"");
}

}  // namespace qtls::ctl
