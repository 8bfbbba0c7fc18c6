// Certificates for name and pin checks, made in the test: a subject with an optional CN and
// the given subjectAltNames, self-signed with a fresh P-256 key.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "tls/ssl_ptr.h"

namespace qtls::tls {

inline X509Ptr makeCert(const char* cn, std::vector<std::string> dnsSans,
                        std::vector<std::string> otherSans = {}) {
  X509Ptr cert(X509_new());
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509_set_version(cert.get(), 2);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("qtls test"), -1, -1, 0);
  if (cn)
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
  std::string san;
  for (const auto& d : dnsSans) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  for (const auto& o : otherSans) san += (san.empty() ? "" : ",") + o;
  if (!san.empty()) {
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, const_cast<char*>(san.c_str()));
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  // Self-signed, so that it has a DER form to hash (certificate pins) at all.
  X509_set_issuer_name(cert.get(), name);
  X509_sign(cert.get(), key, EVP_sha256());
  EVP_PKEY_free(key);
  return cert;
}

}  // namespace qtls::tls
