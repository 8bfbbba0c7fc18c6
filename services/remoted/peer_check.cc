// checkPeer (peer_check.h).
#include "peer_check.h"

#include <openssl/evp.h>

#include <cstring>

#include "tls/name_match.h"
#include "util/text.h"

namespace qtls::remoted {

using policy::TlsLevel;

// Pins are SHA-256 digests of the DER certificate or of the DER SubjectPublicKeyInfo (the
// form DANE and HPKP use; X509_pubkey_digest would hash only the key bits).
bool pinMatches(X509* cert, const std::vector<policy::Pin>& pins) {
  unsigned char certDigest[EVP_MAX_MD_SIZE], spkiDigest[EVP_MAX_MD_SIZE];
  unsigned int n1 = 0, n2 = 0;
  if (X509_digest(cert, EVP_sha256(), certDigest, &n1) != 1) return false;
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return false;
  bool ok = EVP_Digest(der, static_cast<size_t>(len), spkiDigest, &n2, EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok) return false;
  for (const auto& p : pins) {
    const unsigned char* d = p.kind == policy::Pin::Kind::kCert ? certDigest : spkiDigest;
    if (std::memcmp(d, p.sha256.data(), 32) == 0) return true;
  }
  return false;
}

PeerCheck checkPeer(const TlsPlan& plan, X509* peer, long chainResult, const std::string& ip) {
  PeerCheck c;
  const TlsLevel level = plan.decision.level;
  if (level != TlsLevel::kVerify && level != TlsLevel::kFingerprint) return c;
  auto fail = [&](Failure f, std::string arg, std::string err = "") {
    c.ok = false;
    c.verify = "fail";
    c.failure = f;
    c.arg = std::move(arg);
    c.err = std::move(err);
    return c;
  };
  if (level == TlsLevel::kVerify && chainResult != X509_V_OK)
    return fail(chainResult == X509_V_ERR_CERT_HAS_EXPIRED ? Failure::kPeerExpired
                                                           : Failure::kPeerUntrusted,
                plan.caLabel, X509_verify_cert_error_string(chainResult));
  const std::string who = plan.names.empty() ? ip : plan.names.front();
  if (peer == nullptr) return fail(Failure::kPeerNoCertificate, who);
  if (level == TlsLevel::kFingerprint) {
    if (!pinMatches(peer, plan.entry->pins)) {
      c.line = static_cast<long>(plan.entry->line);
      return fail(Failure::kPeerPinMismatch, who);
    }
    c.verify = "pinned";
    return c;
  }
  if (plan.names.empty()) return fail(Failure::kPeerNoName, ip);
  tls::NameResult first;
  for (size_t i = 0; i < plan.names.size(); ++i) {
    tls::NameResult nr = tls::checkCertificateName(peer, plan.names[i]);
    if (nr.result == tls::NameCheck::kMatch) {
      c.verify = "ok";
      return c;
    }
    if (i == 0) first = nr;
  }
  switch (first.result) {
    case tls::NameCheck::kNoCommonName:
      return fail(Failure::kPeerNoCommonName, who);
    case tls::NameCheck::kCnMismatch:
      c.detail = first.cn;
      return fail(Failure::kPeerCnMismatch, who);
    default:
      return fail(Failure::kPeerSanMismatch, who);  // "dNSNnames" (sic), as qmail-tls
  }
}

}  // namespace qtls::remoted
