#include "control/smtproutes.h"

#include <gtest/gtest.h>

namespace qtls::control {
namespace {

TEST(SmtpRoutes, ExactSuffixCatchAllAndOrder) {
  SmtpRoutes r({"example.com:relay1.net", ".example.com:relay2.net:2525", ":fallback.net",
                "noroute.example.com:", "junk line without colon"});
  EXPECT_EQ(r.lookup("example.com")->relay, "relay1.net");
  EXPECT_EQ(r.lookup("example.com")->port, 25u);
  auto sub = r.lookup("a.b.example.com");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->relay, "relay2.net");
  EXPECT_EQ(sub->port, 2525u);
  EXPECT_EQ(r.lookup("other.org")->relay, "fallback.net");
  // An empty relay means "no route, use MX", even though the catch-all exists.
  EXPECT_FALSE(r.lookup("noroute.example.com"));
}

TEST(SmtpRoutes, CaseInsensitiveLastDuplicateWinsAndPorts) {
  SmtpRoutes r(
      {"Example.COM:first", "example.com:second:465", "x.org:[192.0.2.1]:", "y.org:relay:abc"});
  auto e = r.lookup("EXAMPLE.com");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->relay, "second");
  EXPECT_EQ(e->port, 465u);
  EXPECT_EQ(r.lookup("x.org")->relay, "[192.0.2.1]");
  EXPECT_EQ(r.lookup("x.org")->port, 0u);  // ':' without digits: port 0, as qmail's scan_ulong
  EXPECT_EQ(r.lookup("y.org")->port, 0u);
  EXPECT_FALSE(r.lookup("z.net"));
}

TEST(SmtpRoutes, SuffixKeyDoesNotMatchTheDomainItself) {
  SmtpRoutes r({".example.com:relay"});
  EXPECT_FALSE(r.lookup("example.com"));
  EXPECT_TRUE(r.lookup("mx.example.com"));
  EXPECT_FALSE(r.lookup("badexample.com"));
}

TEST(SmtpRoutes, AuthCredentialsAreRefusedWithoutEchoingThem) {
  auto r = SmtpRoutes::parse({"a.org:relay", "example.com:smtp.isp.test:587|alice|s3cret"});
  ASSERT_FALSE(r.ok());
  const std::string msg(r.status().message());
  EXPECT_NE(msg.find("the route for \"example.com\" carries SMTP AUTH credentials"),
            std::string::npos);
  EXPECT_EQ(msg.find("s3cret"), std::string::npos);
  EXPECT_TRUE(SmtpRoutes::parse({"a.org:relay:25", ":catchall"}).ok());
}

}  // namespace
}  // namespace qtls::control
