// qtlsctl stats | watch | health: reading what a daemon does.
#pragma once

#include "client.h"

namespace qtls::ctl {

int stats(Client& c, const Options& o, Args& a);
int watch(Client& c, const Options& o, Args& a);
int health(Client& c, const Options& o, Args& a);

}  // namespace qtls::ctl
