// Which TLS level a delivery gets, and why. A pure function of its inputs, so that the whole
// precedence can be proven by one exhaustive table test.
#pragma once

#include <string>

#include "policy/tls_level.h"
#include "policy/tlspolicy_table.h"

namespace qtls::policy {

enum class Source {
  kTlspolicy,       // a control/tlspolicy entry for the delivery domain
  kNoName,          // the target is an IP address: no name, no qmail policy file applies
  kTlshostsPem,     // control/tlshosts/<fqdn>.pem exists: verify against it
  kExhaustiveList,  // control/tlshosts/exhaustivelist exists: no TLS
  kNotlshosts,      // control/notlshosts/<fqdn> exists: no TLS
  kDefault,         // nothing applies: opportunistic
};
std::string_view sourceName(Source s);

struct Inputs {
  bool targetHasName = true;          // false for IP-literal targets
  const TableEntry* table = nullptr;  // tlspolicy entry for the delivery domain
  bool tlshostsPem = false;
  bool exhaustiveList = false;
  bool notlshosts = false;
};

struct Decision {
  TlsLevel level = TlsLevel::kMay;
  Source source = Source::kDefault;
};

// Precedence (docs/policy.md): tlspolicy entry > no-name target (may) > tlshosts/<fqdn>.pem
// (verify) > tlshosts/exhaustivelist (none) > notlshosts/<fqdn> (none) > may.
Decision decide(const Inputs& in);

}  // namespace qtls::policy
