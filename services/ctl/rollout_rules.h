// Rollout gates (rollout_rules.cc): PromQL with Argo Rollouts' semantics. A value above the
// gate's max is a failure, a query error an error (counted apart); `failure_limit` of either
// fails the gate; `count` values at or under max pass it. An empty or NaN answer (no traffic
// yet, or the nodes are not scraped) is no data: it neither passes nor fails, and a gate still
// without `count` values when the soak ends is inconclusive, which pauses the rollout for a
// person and never promotes.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus_query.h"
#include "qtls/v1/fleet.pb.h"

namespace qtls::ctl {

namespace v1 = qtls::v1;

// "NAME" or "NAME:MAX" for a built-in gate (remote: tls_failures, deferrals; smtpd:
// starttls_failures; `reportOnly`, for the report-only phase: would_fail, both components),
// "NAME:MAX:PROMQL" for one's own. A query may use $nodes (regex of the
// wave's nodes), $baseline (the nodes still on the old policy) and $window; nodes are matched
// on the label qtls_node, which the Prometheus scrape configuration sets (docs/rollouts.md,
// "Gates").
absl::StatusOr<v1::FleetGate> parseGate(const std::string& spec, const std::string& component,
                                        unsigned count, unsigned failureLimit,
                                        double intervalSeconds, bool reportOnly = false);

// A PromQL regular expression matching exactly these node names ("^$" for none).
std::string regexOf(const std::vector<std::string>& nodes);

std::string gateQuery(const v1::FleetGate& g, const std::vector<std::string>& waveNodes,
                      const std::vector<std::string>& baseline, double windowSeconds);

// The node count of each wave ("1", "5%", ...), cumulative; the last must be every node.
absl::StatusOr<std::vector<size_t>> waveSizes(const std::vector<std::string>& waves, size_t nodes);

enum class GateVerdict { kPending, kPassed, kFailed };
// One evaluation, recorded in `st`.
GateVerdict evaluateGate(const v1::FleetGate& g, v1::FleetGateState& st, const PromQuery& prom,
                         const std::string& query);

}  // namespace qtls::ctl
