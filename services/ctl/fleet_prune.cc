// Pruning the fleet's policy bundles (fleet_prune.h).
#include "fleet_prune.h"

#include <algorithm>
#include <functional>
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

double startedAt(const v1::FleetRollout& r) { return r.history_size() ? r.history(0).time() : 0; }

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
  // A reference that cannot be read stops the pruning: what it names is unknown.
  for (const auto& kv : *refs) {
    v1::FleetTarget t;  // a candidate's digest has the same field number and name
    if (auto s = fleet::fromJson(kv.value, &t, kv.key); !s.ok()) return s;
    if (!t.digest().empty()) named.insert(t.digest());
  }
  // The rollout in etcd is always kept, whatever --keep-rollouts says: one still running needs
  // each node's previous policy for its rollback.
  auto current = etcd.get(l.rollout(component));
  if (!current.ok()) return current.status();
  size_t keep = o.keepRollouts;
  if (*current) {
    v1::FleetRollout r;
    if (auto s = fleet::fromJson((*current)->value, &r, (*current)->key); !s.ok()) return s;
    namedBy(r, &named);
    if (keep > 0) --keep;
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
    // A manifest that cannot be read is kept: its age is unknown.
    if (!fleet::fromJson((*m)->value, &b, key).ok() || now - b.created() < o.minAgeSeconds) {
      ++plan.young;
      continue;
    }
    plan.remove.push_back({digest, b.created_by(), b.bytes(), b.created()});
  }
  return plan;
}

absl::StatusOr<size_t> applyPrune(FleetContext& f, const std::string& component,
                                  const PrunePlan& plan, size_t* skipped,
                                  const std::function<void(const PrunePlan::Bundle&)>& deleted) {
  fleet::Etcd& etcd = f.etcd();
  const fleet::Layout& l = f.layout;
  const std::vector<std::string> quiet = {l.nodes(component), l.rollout(component),
                                          l.finishedRollouts(component)};
  // In transactions of kBatch bundles (two deletes each: etcd allows 128 operations), each
  // deleting nothing if a reference was written since the plan was made.
  constexpr size_t kBatch = 60;
  size_t removed = 0;
  *skipped = 0;
  for (size_t from = 0; from < plan.remove.size(); from += kBatch) {
    const size_t to = std::min(plan.remove.size(), from + kBatch);
    std::vector<std::string> keys;
    for (size_t i = from; i < to; ++i) keys.push_back(l.bundle(component, plan.remove[i].digest));
    auto done = etcd.removeTreesIfQuiet(keys, quiet, plan.revision);
    if (!done.ok()) return done.status();
    if (!*done) {
      *skipped += to - from;
      continue;
    }
    removed += to - from;
    if (deleted)
      for (size_t i = from; i < to; ++i) deleted(plan.remove[i]);
  }
  if (*skipped == 0)  // the records go only with what they named
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
      plan.ok() ? applyPrune(f, component, *plan, &skipped, nullptr) : plan.status();
  if (!removed.ok()) {
    say(text::cat("bundles not pruned: ", std::string(removed.status().message()),
                  "; `qtlsctl fleet prune` does it later"));
    return;
  }
  if (*removed || !plan->records.empty())
    say(text::cat("pruned ", *removed, " bundle(s) no target, candidate or the last ",
                  o.keepRollouts, " rollouts name, and ", skipped ? 0 : plan->records.size(),
                  " older rollout record(s)"));
  if (skipped)
    say(text::cat(skipped,
                  " bundle(s) not pruned: a target or rollout changed meanwhile; "
                  "`qtlsctl fleet prune` does it later"));
}

}  // namespace qtls::ctl
