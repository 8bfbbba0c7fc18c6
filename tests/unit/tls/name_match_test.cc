#include "tls/name_match.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "test_cert.h"
#include "tls/ssl_ptr.h"

namespace qtls::tls {
namespace {

TEST(MatchName, ExactCaseInsensitive) {
  EXPECT_TRUE(matchName("mx.example.com", "MX.Example.COM"));
  EXPECT_FALSE(matchName("mx.example.com", "mx.example.co"));
  EXPECT_FALSE(matchName("", "mx"));
}

TEST(MatchName, WildcardCoversExactlyOneLabel) {
  EXPECT_TRUE(matchName("*.example.com", "mx.example.com"));
  EXPECT_FALSE(matchName("*.example.com", "example.com"));
  EXPECT_FALSE(matchName("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(matchName("*x.example.com", "ax.example.com"));
  EXPECT_FALSE(matchName("a*.example.com", "ab.example.com"));
}

TEST(MatchName, LoneStarAndNulNeverMatch) {
  // qmail-tls let a lone "*" match any single-label name; qtls does not.
  EXPECT_FALSE(matchName("*", "localhost"));
  EXPECT_FALSE(matchName(std::string_view("mx.example.com\0.evil", 20), "mx.example.com"));
  EXPECT_FALSE(matchName("mx.example.com", std::string_view("mx.example.com\0", 15)));
}

TEST(MatchWanted, PolicyWildcards) {
  EXPECT_TRUE(matchWanted("mx1.example.com", "*.example.com"));
  EXPECT_TRUE(matchWanted("*.example.com", "*.example.com"));
  EXPECT_TRUE(matchWanted("MX1.Example.COM", "*.example.com"));
  EXPECT_FALSE(matchWanted("example.com", "*.example.com"));
  EXPECT_FALSE(matchWanted("a.b.example.com", "*.example.com"));
  EXPECT_FALSE(matchWanted("a*.example.com", "*.example.com"));
  EXPECT_TRUE(matchWanted("mx.example.com", "mx.example.com"));
  EXPECT_FALSE(matchWanted("*.example.com", "example.com"));
}

TEST(CheckCertificateName, SanWinsAndCnIsIgnoredWhenSanPresent) {
  auto c = makeCert("mx.example.com", {"other.example.com"});
  EXPECT_EQ(checkCertificateName(c.get(), "mx.example.com").result, NameCheck::kNoMatchingSan);
  EXPECT_EQ(checkCertificateName(c.get(), "other.example.com").result, NameCheck::kMatch);
}

TEST(CheckCertificateName, WildcardSan) {
  auto c = makeCert(nullptr, {"a.example.org", "*.example.com"});
  EXPECT_EQ(checkCertificateName(c.get(), "mx.example.com").result, NameCheck::kMatch);
  EXPECT_EQ(checkCertificateName(c.get(), "example.com").result, NameCheck::kNoMatchingSan);
}

TEST(CheckCertificateName, CnUsedOnlyWithoutDnsSan) {
  // An IP SAN is not a dNSName: the CN still decides.
  auto c = makeCert("mx.example.com", {}, {"IP:127.0.0.1"});
  EXPECT_EQ(checkCertificateName(c.get(), "mx.example.com").result, NameCheck::kMatch);
  auto r = checkCertificateName(c.get(), "mx.example.net");
  EXPECT_EQ(r.result, NameCheck::kCnMismatch);
  EXPECT_EQ(r.cn, "mx.example.com");
}

TEST(CheckCertificateName, PolicyWildcardAgainstSanAndCn) {
  auto san = makeCert(nullptr, {"mx1.example.com"});
  EXPECT_EQ(checkCertificateName(san.get(), "*.example.com").result, NameCheck::kMatch);
  auto cn = makeCert("mx2.example.com", {}, {});
  EXPECT_EQ(checkCertificateName(cn.get(), "*.example.com").result, NameCheck::kMatch);
  EXPECT_EQ(checkCertificateName(cn.get(), "*.example.net").result, NameCheck::kCnMismatch);
}

TEST(CheckCertificateName, NoSanNoCn) {
  auto c = makeCert(nullptr, {});
  EXPECT_EQ(checkCertificateName(c.get(), "mx.example.com").result, NameCheck::kNoCommonName);
}

}  // namespace
}  // namespace qtls::tls
