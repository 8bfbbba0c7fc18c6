// Certificate host-name matching (SAN dNSName, else CN, with the "*." wildcard rule).
#include "tls/name_match.h"

#include <openssl/x509v3.h>

#include "tls/ssl_ptr.h"
#include "util/text.h"

namespace qtls::tls {

bool matchName(std::string_view pattern, std::string_view fqdn) {
  if (pattern.empty() || fqdn.empty()) return false;
  if (pattern.find('\0') != std::string_view::npos || fqdn.find('\0') != std::string_view::npos)
    return false;
  if (text::equalsIgnoreCase(pattern, fqdn)) return true;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    size_t dot = fqdn.find('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    return text::equalsIgnoreCase(pattern.substr(1), fqdn.substr(dot));
  }
  return false;
}

bool matchWanted(std::string_view certName, std::string_view wanted) {
  if (matchName(certName, wanted)) return true;
  if (wanted.size() <= 2 || wanted.substr(0, 2) != "*.") return false;
  if (certName.find('\0') != std::string_view::npos) return false;
  size_t dot = certName.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  std::string_view label = certName.substr(0, dot);
  if (label.find('*') != std::string_view::npos && label != "*") return false;
  return text::equalsIgnoreCase(certName.substr(dot), wanted.substr(1));
}

NameResult checkCertificateName(X509* cert, std::string_view fqdn) {
  NameResult out;
  GeneralNamesPtr gens(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  bool sawDns = false;
  if (gens) {
    for (int i = 0; i < sk_GENERAL_NAME_num(gens.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(gens.get(), i);
      if (gn->type != GEN_DNS) continue;
      sawDns = true;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      std::string_view name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                            static_cast<size_t>(ASN1_STRING_length(s)));
      if (matchWanted(name, fqdn)) return out;
    }
  }
  if (sawDns) {
    out.result = NameCheck::kNoMatchingSan;
    return out;
  }
  X509_NAME* subj = X509_get_subject_name(cert);
  int idx = subj ? X509_NAME_get_index_by_NID(subj, NID_commonName, -1) : -1;
  if (idx < 0) {
    out.result = NameCheck::kNoCommonName;
    return out;
  }
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
  if (s == nullptr || ASN1_STRING_length(s) <= 0) {
    out.result = NameCheck::kNoCommonName;
    return out;
  }
  out.cn.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                static_cast<size_t>(ASN1_STRING_length(s)));
  if (matchWanted(out.cn, fqdn)) {
    out.cn.clear();
    return out;
  }
  out.result = NameCheck::kCnMismatch;
  return out;
}

}  // namespace qtls::tls
