// qtlsctl rollout ... (rollout_cmd.cc; the controller itself is rollout.h).
#pragma once

#include <string>

#include "cli.h"
#include "fleet_cmd.h"

namespace qtls::ctl {

int rolloutCommand(FleetContext& f, const std::string& sub, Args& a, bool json);

}  // namespace qtls::ctl
