// judgeCandidate: each verdict from what a session saw, with the candidate loaded by the
// daemon's own loader from a qmail home made here.
#include "candidate.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "../admin/test_pki.h"

namespace qtls::remoted {
namespace {

namespace fs = std::filesystem;
using fleet::Verdict;

tls::X509Ptr parse(const std::string& pem) {
  tls::BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return tls::X509Ptr(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}

class CandidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qtls-candidate-XXXXXX";
    dir_ = mkdtemp(tmpl);
    fs::create_directories(dir_ + "/control");
    write("control/me", "me.example\n");
    write("mx.pem", mx_.cert);
    write("other.pem", other_.cert);
    write("old.pem", old_.cert);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& path, const std::string& content) {
    std::ofstream(dir_ + "/" + path) << content;
  }
  std::shared_ptr<RemoteConfig> candidate(const std::string& tlspolicy) {
    write("control/tlspolicy", tlspolicy);
    auto cfg = loadRemoteConfig(dir_);
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    return cfg.ok() ? *cfg : nullptr;
  }
  // A session that reached mx.example, was offered STARTTLS and finished a handshake with
  // `cert` (under may: nothing checked).
  Observed tlsSession(const testing::Pem& cert) {
    Observed o;
    o.reached = true;
    o.target.address = asio::ip::make_address("192.0.2.1");
    o.target.fqdn = "mx.example";
    o.starttlsOffered = o.tlsTried = o.tlsUp = true;
    o.chain = tls::PeerChain(parse(cert.cert), nullptr);
    return o;
  }

  std::string dir_;
  const testing::Pem mx_ = testing::selfSigned("mx.example");
  const testing::Pem other_ = testing::selfSigned("other.example");
  const testing::Pem old_ = testing::selfSigned("mx.example", -1);
};

TEST_F(CandidateTest, CertificateVerdicts) {
  auto c =
      candidate("a.example verify ca=" + dir_ + "/mx.pem\n" +  //
                "b.example verify ca=" + dir_ + "/other.pem\n" + "c.example verify ca=" + dir_ +
                "/mx.pem match=mx2.example\n" + "d.example verify ca=" + dir_ + "/old.pem\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(judgeCandidate(*c, "a.example", tlsSession(mx_)), Verdict::kPass);
  EXPECT_EQ(judgeCandidate(*c, "b.example", tlsSession(mx_)), Verdict::kCertificateNotTrusted);
  EXPECT_EQ(judgeCandidate(*c, "c.example", tlsSession(mx_)), Verdict::kCertificateHostMismatch);
  EXPECT_EQ(judgeCandidate(*c, "d.example", tlsSession(old_)), Verdict::kCertificateExpired);
}

TEST_F(CandidateTest, PinsAndLevels) {
  auto c = candidate(
      "pin.example fingerprint "
      "fingerprint=0000000000000000000000000000000000000000000000000000000000000000\n"
      "enc.example encrypt\n"
      "none.example none\n"
      "may.example may\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(judgeCandidate(*c, "pin.example", tlsSession(mx_)), Verdict::kValidationFailure);
  EXPECT_EQ(judgeCandidate(*c, "enc.example", tlsSession(mx_)), Verdict::kPass);
  EXPECT_EQ(judgeCandidate(*c, "may.example", tlsSession(mx_)), Verdict::kPass);
  // Plain text where the session had TLS; may where the session had a verified peer.
  EXPECT_EQ(judgeCandidate(*c, "none.example", tlsSession(mx_)), Verdict::kDowngrade);
  Observed verified = tlsSession(mx_);
  verified.verified = true;
  EXPECT_EQ(judgeCandidate(*c, "may.example", verified), Verdict::kDowngrade);
  EXPECT_EQ(judgeCandidate(*c, "enc.example", verified), Verdict::kDowngrade);

  // Sessions without TLS: STARTTLS not offered, refused, a failed handshake, never tried.
  auto plain = [&](bool offered, bool refused, bool tried) {
    Observed o = tlsSession(mx_);
    o.tlsUp = false;
    o.chain = {};
    o.starttlsOffered = offered;
    o.starttlsRefused = refused;
    o.tlsTried = tried;
    return o;
  };
  EXPECT_EQ(judgeCandidate(*c, "enc.example", plain(false, false, false)),
            Verdict::kStarttlsNotSupported);
  EXPECT_EQ(judgeCandidate(*c, "may.example", plain(false, false, false)), Verdict::kPass);
  EXPECT_EQ(judgeCandidate(*c, "enc.example", plain(true, true, false)),
            Verdict::kStarttlsNotSupported);
  EXPECT_EQ(judgeCandidate(*c, "enc.example", plain(true, false, true)),
            Verdict::kValidationFailure);
  // Offered, never tried (the policy in force said none): nothing to judge a certificate on.
  EXPECT_EQ(judgeCandidate(*c, "pin.example", plain(true, false, false)), Verdict::kNotEvaluated);
  Observed unreached;
  EXPECT_EQ(judgeCandidate(*c, "enc.example", unreached), Verdict::kNotEvaluated);
}

}  // namespace
}  // namespace qtls::remoted
