// checkPeer: every verdict a server's certificate can get under each level, with the failure
// table's row, the words its text names, and the report line that row makes of them.
#include "peer_check.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>

#include "../tls/test_cert.h"

namespace qtls::remoted {
namespace {

using policy::Pin;
using policy::TlsLevel;

TlsPlan planFor(TlsLevel level, std::vector<std::string> names = {"mx.example.com"}) {
  TlsPlan p;
  p.decision.level = level;
  p.caLabel = "control/tlshosts/mx.example.com.pem";
  p.names = std::move(names);
  return p;
}

// The report line the session would make of a failed check.
std::string reportOf(const PeerCheck& c) {
  EndingContext e;
  e.ip = "192.0.2.7";
  e.arg = c.arg;
  e.err = c.err;
  e.detail = c.detail;
  e.n = c.line;
  return judge(c.failure, e).line();
}

Pin certPin(X509* x) {
  Pin p;
  p.kind = Pin::Kind::kCert;
  unsigned n = 0;
  X509_digest(x, EVP_sha256(), p.sha256.data(), &n);
  return p;
}

Pin spkiPin(X509* x) {
  Pin p;
  p.kind = Pin::Kind::kSpki;
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
  unsigned n = 0;
  EVP_Digest(der, static_cast<size_t>(len), p.sha256.data(), &n, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return p;
}

TEST(CheckPeer, OpportunisticAndEncryptAcceptAnything) {
  for (TlsLevel l : {TlsLevel::kMay, TlsLevel::kEncrypt}) {
    PeerCheck c = checkPeer(planFor(l), nullptr, X509_V_ERR_CERT_HAS_EXPIRED, "192.0.2.7");
    EXPECT_TRUE(c.ok);
    EXPECT_EQ(c.verify, "none");
    EXPECT_EQ(c.failure, Failure::kNone);
  }
}

TEST(CheckPeer, VerifyWithAMatchingNameIsOk) {
  auto cert = tls::makeCert("mx.example.com", {});
  PeerCheck c = checkPeer(planFor(TlsLevel::kVerify), cert.get(), X509_V_OK, "192.0.2.7");
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.verify, "ok");
  // Any accepted name will do, not only the first (tlspolicy match=).
  auto other = tls::makeCert(nullptr, {"mx2.example.com"});
  c = checkPeer(planFor(TlsLevel::kVerify, {"mx.example.com", "mx2.example.com"}), other.get(),
                X509_V_OK, "192.0.2.7");
  EXPECT_TRUE(c.ok);
}

TEST(CheckPeer, TheChainIsJudgedBeforeTheName) {
  auto cert = tls::makeCert("mx.example.com", {});
  PeerCheck c = checkPeer(planFor(TlsLevel::kVerify), cert.get(),
                          X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "192.0.2.7");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.verify, "fail");
  EXPECT_EQ(c.failure, Failure::kPeerUntrusted);
  EXPECT_EQ(c.arg, "control/tlshosts/mx.example.com.pem");
  EXPECT_EQ(c.err, "unable to get local issuer certificate");
  EXPECT_EQ(c.reason(), rowOf(Failure::kPeerUntrusted).reason);
  EXPECT_NE(reportOf(c).find("192.0.2.7"), std::string::npos) << reportOf(c);
  EXPECT_NE(reportOf(c).find("unable to get local issuer certificate"), std::string::npos);

  c = checkPeer(planFor(TlsLevel::kVerify), cert.get(), X509_V_ERR_CERT_HAS_EXPIRED, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerExpired);
  EXPECT_EQ(c.err, "certificate has expired");
}

TEST(CheckPeer, NoCertificateNamesTheHostOrTheAddress) {
  PeerCheck c = checkPeer(planFor(TlsLevel::kVerify), nullptr, X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerNoCertificate);
  EXPECT_EQ(c.arg, "mx.example.com");
  TlsPlan pinned = planFor(TlsLevel::kFingerprint, {});
  policy::TableEntry entry;
  pinned.entry = &entry;
  c = checkPeer(pinned, nullptr, X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerNoCertificate);
  EXPECT_EQ(c.arg, "192.0.2.7");
}

TEST(CheckPeer, VerifyWithoutANameFails) {
  auto cert = tls::makeCert("mx.example.com", {});
  PeerCheck c = checkPeer(planFor(TlsLevel::kVerify, {}), cert.get(), X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerNoName);
  EXPECT_EQ(c.arg, "192.0.2.7");
}

TEST(CheckPeer, EachWayANameCanMissHasItsRow) {
  auto noCn = tls::makeCert(nullptr, {});
  PeerCheck c = checkPeer(planFor(TlsLevel::kVerify), noCn.get(), X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerNoCommonName);
  EXPECT_EQ(c.arg, "mx.example.com");

  auto otherCn = tls::makeCert("www.example.com", {});
  c = checkPeer(planFor(TlsLevel::kVerify), otherCn.get(), X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerCnMismatch);
  EXPECT_EQ(c.detail, "www.example.com");
  EXPECT_NE(reportOf(c).find("www.example.com"), std::string::npos);

  // With dNSName SANs the CN is not looked at.
  auto otherSan = tls::makeCert("mx.example.com", {"www.example.com"});
  c = checkPeer(planFor(TlsLevel::kVerify), otherSan.get(), X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerSanMismatch);
  EXPECT_EQ(c.arg, "mx.example.com");

  // With several accepted names, the first one's miss is reported.
  c = checkPeer(planFor(TlsLevel::kVerify, {"mx.example.com", "mx2.example.com"}), otherCn.get(),
                X509_V_OK, "192.0.2.7");
  EXPECT_EQ(c.failure, Failure::kPeerCnMismatch);
}

TEST(CheckPeer, FingerprintMatchesTheCertificateOrItsKeyAndIgnoresTheChain) {
  auto cert = tls::makeCert("anything", {});
  auto other = tls::makeCert("anything", {});
  for (const Pin& pin : {certPin(cert.get()), spkiPin(cert.get())}) {
    policy::TableEntry entry;
    entry.line = 7;
    entry.pins = {certPin(other.get()), pin};
    TlsPlan p = planFor(TlsLevel::kFingerprint);
    p.entry = &entry;
    PeerCheck c = checkPeer(p, cert.get(), X509_V_ERR_CERT_HAS_EXPIRED, "192.0.2.7");
    EXPECT_TRUE(c.ok);
    EXPECT_EQ(c.verify, "pinned");
  }
  policy::TableEntry entry;
  entry.line = 7;
  entry.pins = {certPin(other.get()), spkiPin(other.get())};
  TlsPlan p = planFor(TlsLevel::kFingerprint);
  p.entry = &entry;
  PeerCheck c = checkPeer(p, cert.get(), X509_V_OK, "192.0.2.7");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.failure, Failure::kPeerPinMismatch);
  EXPECT_EQ(c.line, 7);
  EXPECT_EQ(c.arg, "mx.example.com");
}

}  // namespace
}  // namespace qtls::remoted
