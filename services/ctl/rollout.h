// The fleet rollout controller (docs/rollouts.md). All its state is the
// FleetRollout value in etcd; whoever holds the rollout lock (a key under a lease) drives it,
// one step at a time, each step written before the next is taken, so a controller killed at
// any point is resumed by the next `rollout resume` without doing a step twice.
//
// Per wave: record each node's previous target, write the new one (provisional), wait for
// every ACK (a NACK rolls back, a missing ACK pauses), soak while the gates are evaluated
// (a failure rolls back, no data pauses for a person, never promotes), then promote.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fleet_cmd.h"
#include "prometheus_query.h"
#include "qtls/v1/fleet.pb.h"
#include "rollout_rules.h"
#include "rollout_view.h"

namespace qtls::ctl {

struct RolloutSpec {
  std::string component, digest;
  std::vector<std::string> waves{"1", "100%"};
  double soakSeconds = 60, reportOnlySeconds = 0, ackTimeoutSeconds = 60, intervalSeconds = 10;
  std::string prometheus;
  std::vector<v1::FleetGate> gates;
  v1::FleetGate reportOnlyGate;      // evaluated over every node before wave 1; empty: none
  std::vector<std::string> nodes;    // rollout order; empty: every node with a status, by name
  std::string onNodeLoss = "pause";  // a wave node lost during the soak: "pause" or "rollback"
};

// What the controller touches besides etcd: seams for the tests.
struct RolloutEnv {
  FleetContext* fleet = nullptr;
  std::string who;  // "alice@host:pid", for the lock, the history and the audit of targets
  std::function<double()> now;
  std::function<void(double seconds)> sleep;
  std::function<void(const std::string& line)> say;
  // Built from the rollout's own `prometheus` URL unless set.
  std::function<PromQuery(const std::string& url)> prometheus;
};
RolloutEnv defaultEnv(FleetContext& f);

// Writes a new rollout (refused while another one of the component is not finished).
absl::StatusOr<v1::FleetRollout> startRollout(RolloutEnv& env, const RolloutSpec& spec);
// Takes the lock and drives the rollout until it is done, rolled back, aborted or paused.
absl::StatusOr<v1::FleetRollout> driveRollout(RolloutEnv& env, const std::string& component);
absl::StatusOr<v1::FleetRollout> readRollout(RolloutEnv& env, const std::string& component);
absl::StatusOr<v1::FleetRollout> pauseRollout(RolloutEnv& env, const std::string& component,
                                              const std::string& reason);
// Rolls back every changed node; done by the controller holding the lock if there is one.
absl::StatusOr<v1::FleetRollout> abortRollout(RolloutEnv& env, const std::string& component);
// Promotes the current wave now (a person's decision after an inconclusive pause), then
// drives on.
absl::StatusOr<v1::FleetRollout> promoteRollout(RolloutEnv& env, const std::string& component);
// Back to the state it was paused in, then drives on.
absl::StatusOr<v1::FleetRollout> resumeRollout(RolloutEnv& env, const std::string& component);

}  // namespace qtls::ctl
