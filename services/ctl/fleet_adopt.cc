// qtlsctl fleet adopt (fleet_adopt.h).
#include "fleet_adopt.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "admin/policy_store.h"
#include "fleet/layout.h"
#include "qtls/v1/fleet.pb.h"
#include "util/text.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;

namespace {

// One node: its policy in force made its target. Returns an exit code, having said why.
int adoptOne(FleetContext& f, const Options& admin, const std::string& component,
             const std::string& node, bool force) {
  Client c(admin);
  v1::GetPolicyResponse now;
  auto ctx = c.context();
  if (grpc::Status s = c.policy().GetPolicy(ctx.get(), {}, &now); !s.ok()) return fail(admin, s);
  const std::string daemon = component == "remote" ? "qtls-remoted" : "qtls-smtpd";
  if (now.daemon() != daemon) {
    std::fprintf(stderr, "qtlsctl: %s: %s is %s, not the %s component's %s\n", node.c_str(),
                 admin.target.c_str(), now.daemon().c_str(), component.c_str(), daemon.c_str());
    return kInvalid;
  }
  admin::Items items;
  std::string redacted;
  for (const auto& it : now.items()) {
    items[it.path()] = it.content();
    if (it.redacted()) redacted += (redacted.empty() ? "" : ", ") + it.path();
  }
  // The admin API never shows a private key: a policy with one cannot be read back whole.
  if (!redacted.empty() || admin::PolicyStore::digestOf(items) != now.digest()) {
    std::fprintf(stderr,
                 "qtlsctl: %s: the policy in force holds a key the admin API does not show (%s); "
                 "store it from its files with `qtlsctl fleet bundle --from` and `fleet target`\n",
                 node.c_str(), redacted.empty() ? "digest differs" : redacted.c_str());
    return kRefused;
  }
  // The daemon asked should be the node named: a node that reports a status says what it
  // runs. A mismatch is said, not refused: a local change may not be in etcd yet.
  auto status = f.etcd().get(f.layout.status(component, node));
  if (!status.ok()) return failed(status.status());
  if (*status) {
    v1::FleetStatus st;
    if (fleet::fromJson((*status)->value, &st, (*status)->key).ok() &&
        !st.applied_digest().empty() && st.applied_digest() != now.digest())
      std::fprintf(stderr,
                   "qtlsctl: warning: %s: its status in etcd says it runs %s, the daemon at %s "
                   "runs %s: a change not yet reported, or another node's admin socket?\n",
                   node.c_str(), st.applied_digest().c_str(), admin.target.c_str(),
                   now.digest().c_str());
  }
  const std::string key = f.layout.target(component, node);
  auto existing = f.etcd().get(key);
  if (!existing.ok()) return failed(existing.status());
  int64_t revision = 0;  // the target's, for the compare-and-swap below
  if (*existing) {
    revision = (*existing)->modRevision;
    v1::FleetTarget t;
    fleet::fromJson((*existing)->value, &t, key).IgnoreError();
    if (t.digest() == now.digest()) {
      std::printf("%s: already targets %s\n", node.c_str(), now.digest().c_str());
      return kOk;
    }
    if (!force) {
      std::fprintf(stderr,
                   "qtlsctl: %s: already targets %s, not the %s in force; --force replaces it\n",
                   node.c_str(), t.digest().c_str(), now.digest().c_str());
      return kConflict;
    }
    // Not even forced into a rollout that is still going: its rollback would undo it.
    if (!t.rollout().empty()) {
      auto r = f.etcd().get(f.layout.rollout(component));
      if (!r.ok()) return failed(r.status());
      v1::FleetRollout rollout;
      if (*r && fleet::fromJson((*r)->value, &rollout, (*r)->key).ok() &&
          rollout.id() == t.rollout() && rollout.state() != v1::FleetRollout::DONE &&
          rollout.state() != v1::FleetRollout::ROLLED_BACK &&
          rollout.state() != v1::FleetRollout::ABORTED) {
        std::fprintf(stderr,
                     "qtlsctl: %s: its target belongs to rollout %s, which is not finished; "
                     "finish or abort it first\n",
                     node.c_str(), t.rollout().c_str());
        return kRefused;
      }
    }
  }
  auto digest = fleet::putBundle(f.etcd(), f.layout, component, items, f.who);
  if (!digest.ok()) return failed(digest.status());
  v1::FleetTarget t;
  t.set_digest(*digest);
  auto written = f.etcd().compareAndPut(key, fleet::toJson(t), revision);
  if (!written.ok()) return failed(written.status());
  if (!*written) {
    std::fprintf(stderr, "qtlsctl: %s: its target changed meanwhile; run adopt again\n",
                 node.c_str());
    return kConflict;
  }
  std::printf("%s: adopted %s (%s)\n", node.c_str(), digest->c_str(), key.c_str());
  return kOk;
}

}  // namespace

int adoptCommand(FleetContext& f, const Options& admin, Args& a) {
  std::string component;
  std::vector<std::pair<std::string, std::string>> nodes;  // name, admin target
  bool force = false;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--component") {
      component = a.next(flag);
      if (!fleet::validComponent(component)) usage("--component: remote or smtpd");
    } else if (flag == "--node") {
      const std::string v = a.next(flag);
      const size_t eq = v.find('=');
      const std::string name = v.substr(0, eq);
      if (!fleet::validNodeName(name)) usage("--node: not a valid host name: " + name);
      nodes.emplace_back(name, eq == std::string::npos ? admin.target : v.substr(eq + 1));
    } else if (flag == "--force") {
      force = true;
    } else {
      usage("fleet adopt: unknown argument " + flag);
    }
  }
  if (component.empty() || nodes.empty())
    usage("fleet adopt needs --component and --node NAME[=TARGET] (one or more)");
  int rc = kOk;
  for (const auto& [name, target] : nodes) {
    Options o = admin;
    o.target = target;
    if (int r = adoptOne(f, o, component, name, force); r != kOk && rc == kOk) rc = r;
  }
  return rc;
}

}  // namespace qtls::ctl
