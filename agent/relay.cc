// Relay rules.
#include "relay.h"

#include <openssl/x509.h>

#include "tls/ssl_ptr.h"
#include "util/text.h"

namespace qtls::agent {

bool rcpthostsAllow(const SmtpdConfig& cfg, std::string_view address) {
  if (!cfg.haveRcpthosts) return true;
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return true;
  std::string domain = text::lower(address.substr(at + 1));
  if (cfg.rcpthosts.count(domain)) return true;
  for (size_t i = 0; i < domain.size(); ++i)
    if (domain[i] == '.' && cfg.rcpthosts.count(domain.substr(i))) return true;
  return false;
}

bool badMailFrom(const SmtpdConfig& cfg, std::string_view address) {
  if (cfg.badmailfrom.empty()) return false;
  std::string a = text::lower(address);
  if (cfg.badmailfrom.count(a)) return true;
  size_t at = a.rfind('@');
  return at != std::string::npos && cfg.badmailfrom.count(a.substr(at));
}

CertDecision checkClientCertificate(SSL* ssl, const std::set<std::string>& tlsclients) {
  tls::X509Ptr cert(SSL_get1_peer_certificate(ssl));
  return checkClientCertificate(cert.get(), SSL_get_verify_result(ssl), tlsclients);
}

CertDecision checkClientCertificate(X509* cert, long v, const std::set<std::string>& tlsclients) {
  CertDecision d;
  if (!cert) return d;  // no certificate: refused without a reason
  X509_NAME* subject = X509_get_subject_name(cert);
  if (v != X509_V_OK) {
    d.reason = X509_verify_cert_error_string(v);
    return d;
  }
  int idx = X509_NAME_get_index_by_NID(subject, NID_pkcs9_emailAddress, -1);
  const ASN1_STRING* s =
      idx >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)) : nullptr;
  if (s == nullptr || ASN1_STRING_length(s) <= 0) {
    d.reason = "contains no email address";
    return d;
  }
  std::string email(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                    static_cast<size_t>(ASN1_STRING_length(s)));
  if (email.find('\0') != std::string::npos || !tlsclients.count(text::lower(email))) {
    d.reason = "email address not in my list of tlsclients";
    return d;
  }
  d.allowed = true;
  d.email = email;
  return d;
}

}  // namespace qtls::agent
