// The one check of a host name that qtls accepts anywhere: in control files, in policy paths
// (tlshosts/<fqdn>.pem, notlshosts/<fqdn>), in tlspolicy keys and match= names, and for names
// that came from DNS before they are looked up in a policy. Labels of 1 to 63 letters, digits,
// '-' or '_', separated by single dots, 253 bytes at most; so never empty, never "..", "/",
// NUL or a leading or trailing dot.
#pragma once

#include <string_view>

namespace qtls::text {

enum class HostName {
  kPlain,          // "mx.example.com"
  kSuffixAllowed,  // also ".example.com" (rcpthosts: every name under it)
};

bool validHostName(std::string_view name, HostName rules = HostName::kPlain);

}  // namespace qtls::text
