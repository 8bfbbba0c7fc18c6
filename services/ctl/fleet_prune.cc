// Pruning the fleet's policy bundles (fleet_prune.h).
#include "fleet_prune.h"

#include <algorithm>
#include <set>

#include "fleet/layout.h"
#include "qtls/v1/fleet.pb.h"
#include "util/text.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;

namespace {

// What a rollout needs kept: its policy, and each changed node's previous one.
void namedBy(const v1::FleetRollout& r, std::set<std::string>* named) {
  named->insert(r.digest());
  for (const auto& [node, previous] : r.previous())
    if (!previous.empty()) named->insert(previous);
}

double startedAt(const v1::FleetRollout& r) {
  return r.history_size() ? r.history(0).time() : 0;
}

}  // namespace

absl::StatusOr<PrunePlan> planPrune(FleetContext& f, const std::string& component,
                                    const PruneOptions& o, double now) {
  fleet::Etcd& etcd = f.etcd();
  const fleet::Layout& l = f.layout;
  PrunePlan plan;
  std::set<std::string> named;
  // Read the references first: the deletes check that none of them changed after this
  // revision, so a target written meanwhile keeps its bundle.
  auto refs = etcd.list(l.nodes(component), &plan.revision);
  if (!refs.ok()) return refs.status();
  for (const auto& kv : *refs) {
    v1::FleetTarget t;  // a candidate's digest has the same field number and name
    if (fleet::fromJson(kv.value, &t, kv.key).ok() && !t.digest().empty()) named.insert(t.digest());
  }
  auto current = etcd.get(l.rollout(component));
  if (!current.ok()) return current.status();
  size_t keep = o.keepRollouts;
  if (*current && keep > 0) {
    v1::FleetRollout r;
    if (auto s = fleet::fromJson((*current)->value, &r, (*current)->key); !s.ok()) return s;
    namedBy(r, &named);
    --keep;
  }
  auto records = etcd.list(l.finishedRollouts(component));
  if (!records.ok()) return records.status();
  std::vector<std::pair<double, v1::FleetRollout>> finished;
  for (const auto& kv : *records) {
    v1::FleetRollout r;
    if (auto s = fleet::fromJson(kv.value, &r, kv.key); !s.ok()) return s;
    finished.emplace_back(startedAt(r), std::move(r));
  }
  std::sort(finished.begin(), finished.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });  // newest first
  for (size_t i = 0; i < finished.size(); ++i) {
    if (i < keep)
      namedBy(finished[i].second, &named);
    else
      plan.records.push_back(finished[i].second.id());
  }
  // Manifests only: a bundle's chunks sit under its manifest's key plus "/".
  auto keys = etcd.keys(l.bundles(component));
  if (!keys.ok()) return keys.status();
  for (const std::string& key : *keys) {
    const std::string digest = key.substr(l.bundles(component).size());
    if (digest.find('/') != std::string::npos) continue;
    if (named.count(digest)) {
      ++plan.kept;
      continue;
    }
    auto m = etcd.get(key);
    if (!m.ok()) return m.status();
    if (!*m) continue;  // deleted meanwhile
    v1::FleetBundle b;
    fleet::fromJson((*m)->value, &b, key).IgnoreError();
    if (now - b.created() < o.minAgeSeconds) {
      ++plan.young;
      continue;
    }
    plan.remove.push_back({digest, b.created_by(), b.bytes(), b.created()});
  }
  return plan;
}

absl::StatusOr<size_t> applyPrune(FleetContext& f, const std::string& component,
                                  const PrunePlan& plan, size_t* skipped) {
  fleet::Etcd& etcd = f.etcd();
  const fleet::Layout& l = f.layout;
  const std::vector<std::string> quiet = {l.nodes(component), l.rollout(component),
                                          l.finishedRollouts(component)};
  size_t removed = 0;
  *skipped = 0;
  for (const PrunePlan::Bundle& b : plan.remove) {
    auto done = etcd.removeTreeIfQuiet(l.bundle(component, b.digest), quiet, plan.revision);
    if (!done.ok()) return done.status();
    if (*done)
      ++removed;
    else
      ++*skipped;
  }
  for (const std::string& id : plan.records)
    if (auto s = etcd.remove(l.finishedRollout(component, id)); !s.ok()) return s;
  return removed;
}

void pruneAfterRollout(FleetContext& f, const std::string& component, double now,
                       const std::function<void(const std::string&)>& say) {
  const PruneOptions o;
  auto plan = planPrune(f, component, o, now);
  size_t skipped = 0;
  absl::StatusOr<size_t> removed =
      plan.ok() ? applyPrune(f, component, *plan, &skipped) : plan.status();
  if (!removed.ok()) {
    say(text::cat("bundles not pruned: ", std::string(removed.status().message()),
                  "; `qtlsctl fleet prune` does it later"));
    return;
  }
  if (*removed || !plan->records.empty())
    say(text::cat("pruned ", *removed, " bundle(s) no target, candidate or the last ",
                  o.keepRollouts, " rollouts name, and ", plan->records.size(),
                  " older rollout record(s)"));
}

}  // namespace qtls::ctl
