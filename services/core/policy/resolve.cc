// TLS policy precedence.
#include "policy/resolve.h"

namespace qtls::policy {

std::string_view sourceName(Source s) {
  switch (s) {
    case Source::kTlspolicy:
      return "tlspolicy";
    case Source::kNoName:
      return "ip-literal";
    case Source::kTlshostsPem:
      return "tlshosts";
    case Source::kExhaustiveList:
      return "exhaustivelist";
    case Source::kNotlshosts:
      return "notlshosts";
    case Source::kDefault:
      return "default";
  }
  return "default";
}

Decision decide(const Inputs& in) {
  // The table is keyed by the delivery domain, not by the name DNS returned, so it holds even
  // when an attacker changes the MX answer; it therefore comes first, even for IP targets.
  if (in.table != nullptr) return {in.table->level, Source::kTlspolicy};
  if (!in.targetHasName) return {TlsLevel::kMay, Source::kNoName};
  if (in.tlshostsPem) return {TlsLevel::kVerify, Source::kTlshostsPem};
  if (in.exhaustiveList) return {TlsLevel::kNone, Source::kExhaustiveList};
  if (in.notlshosts) return {TlsLevel::kNone, Source::kNotlshosts};
  return {TlsLevel::kMay, Source::kDefault};
}

}  // namespace qtls::policy
