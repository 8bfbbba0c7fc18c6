// qtlsctl rollout watch: the rollout live (rollout_view.h draws it). On a terminal the view is
// redrawn every second; otherwise (or with --plain) one line per change. Ends when the
// rollout is done, rolled back or aborted, with `rollout status`'s exit code.
#pragma once

#include <string>

#include "rollout.h"

namespace qtls::ctl {

int watchRollout(RolloutEnv& env, const std::string& component, bool plain);
// `rollout status`'s exit code for a state: 0 done, 10 running, 11 paused, 12 rolled back,
// 13 aborted.
int statusExit(v1::FleetRollout::State s);

}  // namespace qtls::ctl
