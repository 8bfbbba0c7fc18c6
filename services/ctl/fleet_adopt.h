// qtlsctl fleet adopt: a fleet's day one. Reads each node's policy in force over its admin
// API, stores it as a bundle and makes it the node's target, so that `rollout start` (which
// needs a target on every node to have something to roll back to) works at once.
#pragma once

#include "cli.h"
#include "client.h"
#include "fleet_cmd.h"

namespace qtls::ctl {

// `adopt --component C --node NAME[=TARGET]... [--force]`; TARGET as --target takes it, the
// global --target when left out.
int adoptCommand(FleetContext& f, const Options& admin, Args& a);

}  // namespace qtls::ctl
