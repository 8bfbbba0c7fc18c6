// Certificate name checks with the qmail-tls rules: if the certificate has any dNSName
// subjectAltName one must match (CN ignored); otherwise the first subject CN is used.
// A pattern "*.rest" matches exactly one extra leading label. Unlike the patch, a lone "*"
// matches nothing and a name with a NUL byte never matches.
#pragma once

#include <openssl/x509.h>

#include <string>
#include <string_view>

namespace qtls::tls {

// Case-insensitive match of one certificate name (`pattern`) against `fqdn`.
bool matchName(std::string_view pattern, std::string_view fqdn);

// Like matchName, and `wanted` may itself be "*.rest" (a control/tlspolicy match= entry): then
// any certificate name with exactly one label before "rest" matches, as does "*.rest" itself.
bool matchWanted(std::string_view certName, std::string_view wanted);

enum class NameCheck {
  kMatch,
  kNoMatchingSan,  // had dNSName SANs, none matched
  kNoCommonName,   // no dNSName SAN and no usable CN
  kCnMismatch,     // no dNSName SAN, CN present but different (cn holds it)
};

struct NameResult {
  NameCheck result = NameCheck::kMatch;
  std::string cn;  // the CN compared, when result is kCnMismatch
};

// `fqdn` may be a "*.rest" policy pattern (see matchWanted).
NameResult checkCertificateName(X509* cert, std::string_view fqdn);

}  // namespace qtls::tls
