// qtlsctl policy get | diff | apply | rollback | resolve (docs/admin-api.md, "qtlsctl").
#pragma once

#include "client.h"

namespace qtls::ctl {

int policyGet(Client& c, const Options& o, Args& a);
int policyApply(Client& c, const Options& o, Args& a, bool diffOnly);
int policyRollback(Client& c, const Options& o, Args& a);
int policyResolve(Client& c, const Options& o, Args& a);

}  // namespace qtls::ctl
