// ResolvePolicy for inbound: what a client would get (STARTTLS, relaying, a recipient), from
// the configuration in force (docs/admin-api.md).
#pragma once

#include <string>

#include "qtls/v1/policy.pb.h"
#include "smtpd_config.h"

namespace qtls::agent {

// Fills `out`; returns "" or an INVALID_ARGUMENT message.
std::string resolvePolicy(const SmtpdConfig& cfg, const v1::ResolvePolicyRequest& req,
                          v1::ResolvePolicyResponse* out);

}  // namespace qtls::agent
