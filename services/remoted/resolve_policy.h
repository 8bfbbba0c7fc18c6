// ResolvePolicy for outbound: the TLS plan a delivery would get, from the configuration in
// force (docs/admin-api.md).
#pragma once

#include <string>

#include "qtls/v1/policy.pb.h"
#include "remote_config.h"

namespace qtls::remoted {

// Fills `out`; returns "" or an INVALID_ARGUMENT message.
std::string resolvePolicy(const RemoteConfig& cfg, const v1::ResolvePolicyRequest& req,
                          v1::ResolvePolicyResponse* out);

}  // namespace qtls::remoted
