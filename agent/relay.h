// The relay decision of qmail-smtpd (spec 4.6): relay-client ranges, rcpthosts with
// ".suffix" entries, and the qmail-tls client-certificate rule.
#pragma once

#include <openssl/ssl.h>

#include <set>
#include <string>
#include <string_view>

#include "smtpd_config.h"

namespace qtls::agent {

// rcpthosts rule: no rcpthosts file = every domain; no '@' = allowed; else the lowercased
// domain or one of its ".suffix" forms must be listed.
bool rcpthostsAllow(const SmtpdConfig& cfg, std::string_view address);

// badmailfrom: the whole address or "@domain", case-insensitively.
bool badMailFrom(const SmtpdConfig& cfg, std::string_view address);

struct CertDecision {
  bool allowed = false;
  std::string email;   // the certificate's emailAddress, when allowed
  std::string reason;  // why not: X509 error text, "contains no email address", ...; "" when
                       // the client sent no certificate
};

// Checks the client certificate of a finished handshake: chain verified against clientca.pem
// (and clientcrl.pem), first subject emailAddress listed in tlsclients.
CertDecision checkClientCertificate(SSL* ssl, const std::set<std::string>& tlsclients);
// The same rule for a certificate `cert` whose chain verified with `verifyResult`.
CertDecision checkClientCertificate(X509* cert, long verifyResult,
                                    const std::set<std::string>& tlsclients);

}  // namespace qtls::agent
