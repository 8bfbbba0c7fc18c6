#include "policy/tlspolicy_table.h"

#include <gtest/gtest.h>

#include <cctype>
#include <ostream>

#include "util/host_name.h"

namespace qtls::policy {
namespace {

TEST(TlsPolicyTable, ParsesEveryAttribute) {
  const std::string fp(64, 'a');
  auto t = TlsPolicyTable::parse(
      "# comment\n"
      "\n"
      "example.com  verify  ca=/etc/ssl/ex.pem  match=mx.example.com:*.example.net  "
      "min_version=TLS1.3\n"
      ".example.org encrypt\n"
      "pinned.test fingerprint fingerprint=sha256:" +
          fp + " spki=" + fp +
          "\n"
          "* may\n",
      "control/tlspolicy");
  ASSERT_TRUE(t.ok()) << t.status();
  const TableEntry* e = t->lookup("EXAMPLE.com.");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->level, TlsLevel::kVerify);
  EXPECT_EQ(e->ca, "/etc/ssl/ex.pem");
  EXPECT_EQ(e->match, (std::vector<std::string>{"mx.example.com", "*.example.net"}));
  EXPECT_EQ(e->minVersion, 0x0304);
  EXPECT_EQ(e->line, 3);
  EXPECT_EQ(t->lookup("a.b.example.org")->level, TlsLevel::kEncrypt);
  EXPECT_EQ(t->lookup("example.org")->level, TlsLevel::kMay);  // ".x" is subdomains only
  EXPECT_EQ(t->lookup("pinned.test")->pins.size(), 2u);
  EXPECT_EQ(t->lookup("anything.else")->level, TlsLevel::kMay);
}

struct Bad {
  const char* content;
  const char* message;
};

// Stable, readable test names for ctest: the expected message, squeezed to identifier chars.
void PrintTo(const Bad& b, std::ostream* os) { *os << b.message; }
std::string caseName(const ::testing::TestParamInfo<Bad>& info) {
  std::string m = std::string(info.param.message).substr(std::string("control/tlspolicy ").size());
  std::string out;
  for (char c : m)
    if (std::isalnum(static_cast<unsigned char>(c)))
      out.push_back(c);
    else if (!out.empty() && out.back() != '_')
      out.push_back('_');
  return out.substr(0, 60);
}

class TlsPolicyTableErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(TlsPolicyTableErrors, RefusedWithFileLineAndReason) {
  auto t = TlsPolicyTable::parse(GetParam().content, "control/tlspolicy");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(t.status().message()), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    All, TlsPolicyTableErrors,
    ::testing::Values(
        Bad{"ok.com may\nbad.com\n",
            "control/tlspolicy line 2: expected \"<domain> <level> [attr=value ...]\""},
        Bad{"a.com secure\n",
            "control/tlspolicy line 1: unknown level \"secure\" (expected none, may, encrypt, "
            "verify or fingerprint)"},
        Bad{"../etc/passwd verify\n",
            "control/tlspolicy line 1: invalid destination \"../etc/passwd\""},
        Bad{"a/b.com may\n", "control/tlspolicy line 1: invalid destination \"a/b.com\""},
        Bad{"a.com may\nA.COM none\n",
            "control/tlspolicy line 2: duplicate destination \"a.com\" (first on line 1)"},
        Bad{"a.com may ca=/x.pem\n",
            "control/tlspolicy line 1: ca= is only valid with level verify"},
        Bad{"a.com verify ca=x.pem\n", "control/tlspolicy line 1: ca= needs an absolute path"},
        Bad{"a.com verify match=a..b\n", "control/tlspolicy line 1: invalid match name \"a..b\""},
        Bad{"a.com fingerprint\n",
            "control/tlspolicy line 1: level fingerprint needs at least one fingerprint= or spki="},
        Bad{"a.com fingerprint fingerprint=abcd\n",
            "control/tlspolicy line 1: fingerprint= needs a SHA-256 digest in hex (64 digits)"},
        Bad{"a.com verify min_version=SSL3\n",
            "control/tlspolicy line 1: unknown min_version \"SSL3\" (TLS1.0 to TLS1.3)"},
        Bad{"a.com verify colour=blue\n", "control/tlspolicy line 1: unknown attribute \"colour\""},
        Bad{"a.com verify ca\n", "control/tlspolicy line 1: expected attr=value, got \"ca\""}),
    caseName);

TEST(HostName, OneRuleForEveryName) {
  EXPECT_FALSE(text::validHostName("mx.example.com."));  // trailing dot: DNS strips it first
  EXPECT_FALSE(text::validHostName(std::string(64, 'a') + ".com"));
  EXPECT_TRUE(text::validHostName(std::string(63, 'a') + ".com"));
  EXPECT_FALSE(text::validHostName(".example.com"));
  EXPECT_TRUE(text::validHostName(".example.com", text::HostName::kSuffixAllowed));
  EXPECT_FALSE(text::validHostName("..example.com", text::HostName::kSuffixAllowed));
  EXPECT_FALSE(text::validHostName(".", text::HostName::kSuffixAllowed));
}

TEST(HostName, RefusesPathTricks) {
  EXPECT_TRUE(text::validHostName("mx.example.com"));
  EXPECT_TRUE(text::validHostName("MX_1.example-a.com"));
  EXPECT_FALSE(text::validHostName(""));
  EXPECT_FALSE(text::validHostName(".."));
  EXPECT_FALSE(text::validHostName("a/../b"));
  EXPECT_FALSE(text::validHostName(".hidden"));
  EXPECT_FALSE(text::validHostName("a..b"));
  EXPECT_FALSE(text::validHostName(std::string("a\0b", 3)));
  EXPECT_FALSE(text::validHostName("a b"));
  EXPECT_FALSE(text::validHostName("a\\.b"));
}

}  // namespace
}  // namespace qtls::policy
