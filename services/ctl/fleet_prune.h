// Pruning the fleet's policy bundles (docs/rollouts.md, "Pruning bundles"). A bundle is kept while
// a node's target or candidate names it, while one of the last N rollouts names it (its policy or a
// node's previous one, which a rollback would need), and while it is younger than the minimum age
// (it may be about to be targeted); every other bundle is deleted, each in one transaction that
// deletes nothing if a target, candidate or rollout changed since they were read. Rollout records
// past the last N are deleted with it. The rollout in etcd, finished or not, always counts as
// named.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fleet_cmd.h"

namespace qtls::ctl {

struct PruneOptions {
  size_t keepRollouts = 5;      // the current rollout counts as one
  double minAgeSeconds = 3600;  // a bundle younger than this is kept
};

struct PrunePlan {
  struct Bundle {
    std::string digest, createdBy;
    uint64_t bytes = 0;
    double created = 0;
  };
  std::vector<Bundle> remove;        // named by nothing kept, old enough
  std::vector<std::string> records;  // finished-rollout records past the last N
  size_t kept = 0, young = 0;        // bundles kept because named, because young
  int64_t revision = 0;              // of the reads the plan was made from
};

absl::StatusOr<PrunePlan> planPrune(FleetContext& f, const std::string& component,
                                    const PruneOptions& o, double now);
// Deletes what the plan names; returns how many bundles went, telling `deleted` of each. A
// bundle whose references changed since the plan was made is left, and counted in `skipped`;
// the rollout records go only when nothing was left.
absl::StatusOr<size_t> applyPrune(FleetContext& f, const std::string& component,
                                  const PrunePlan& plan, size_t* skipped,
                                  const std::function<void(const PrunePlan::Bundle&)>& deleted);
// What a finished rollout does last: the same pruning with the defaults; says what it did,
// and only warns when it cannot (the rollout's result stands).
void pruneAfterRollout(FleetContext& f, const std::string& component, double now,
                       const std::function<void(const std::string&)>& say);

}  // namespace qtls::ctl
