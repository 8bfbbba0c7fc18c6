// Liveness is part of every gate (docs/rollouts.md, "A node lost during the soak"): a wave is
// promoted only if each of its nodes still holds a live status lease that ACKs the rollout's
// digest and, with Prometheus, was scraped successfully since the soak began. A rate window
// keeps a dead node's old samples, and the mail it cannot take while down shows in no metric,
// so gates alone would promote a dead canary.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fleet_cmd.h"
#include "prometheus_query.h"

namespace qtls::ctl {

struct LostNode {
  std::string node;
  std::string why;  // "no live status lease", "status ACKs another digest", "not scraped since"
};

// The nodes of `nodes` that are lost; empty when every one is alive. `prom` may be null (no
// Prometheus: the status lease alone decides). An error when etcd or Prometheus cannot answer.
absl::StatusOr<std::vector<LostNode>> lostNodes(FleetContext& fleet, const std::string& component,
                                                const std::string& digest,
                                                const std::vector<std::string>& nodes,
                                                const PromQuery* prom, double since);

// "node1 (no live status lease), node2 (not scraped since the soak began)"
std::string describeLost(const std::vector<LostNode>& lost);

}  // namespace qtls::ctl
