// One step of the rollout state machine (rollout.h), and what the steps and the operations
// share: the history line, the rollback.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "rollout.h"
#include "rollout_store.h"

namespace qtls::ctl {

using State = v1::FleetRollout::State;

// Done, rolled back or aborted.
bool finished(State s);
// A line of the rollout's history (and its reason), said as it happens.
void note(RolloutEnv& env, v1::FleetRollout& r, const std::string& what);
// Every changed node back on the target it had, candidates cleared, then the final state.
absl::Status rollBack(RolloutEnv& env, Read& rd, State final, const std::string& why);
// One step of the state machine; false when the driver should stop (paused or finished).
absl::StatusOr<bool> step(RolloutEnv& env, Read& rd);

}  // namespace qtls::ctl
