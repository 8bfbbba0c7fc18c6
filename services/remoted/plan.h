// What the TLS policy asks for when delivering mail for a domain to one target, and the words
// the reports use for it (spec 3.2, docs/policy.md).
#pragma once

#include <string>
#include <vector>

#include "policy/resolve.h"
#include "remote_config.h"
#include "targets.h"
#include "tls/client_context.h"

namespace qtls::remoted {

struct TlsPlan {
  policy::Decision decision;
  const policy::TableEntry* entry = nullptr;
  // "control/tlshosts/<fqdn>.pem exists" or "control/tlspolicy line N requires L"
  std::string sentence;
  std::string caLabel;             // CA file as reports name it
  std::vector<std::string> names;  // accepted certificate names (verify)
  // The snapshot's compiled context for this plan, or why there is none.
  RemoteConfig::Ctx context = absl::UnavailableError("no context");
};

// The plan for delivering mail for `domain` to target `t` under `cfg` (also answers the
// admin API's ResolvePolicy).
TlsPlan makePlan(const RemoteConfig& cfg, const std::string& domain, const Target& t);

}  // namespace qtls::remoted
