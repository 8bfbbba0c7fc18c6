// qtlsctl confine (confine.cc).
#pragma once

#include "cli.h"

namespace qtls::ctl {

// Moves a daemon's policy files into a directory its user owns, symlinked from control/.
int confine(Args& a);

}  // namespace qtls::ctl
