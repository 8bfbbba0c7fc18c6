#include <gtest/gtest.h>

#include "intake.h"
#include "targets.h"

namespace qtls::remoted {
namespace {

TEST(IpLiteral, Forms) {
  EXPECT_EQ(parseIpLiteral("192.0.2.1")->to_string(), "192.0.2.1");
  EXPECT_EQ(parseIpLiteral("[192.0.2.1]")->to_string(), "192.0.2.1");
  EXPECT_EQ(parseIpLiteral("[IPv6:2001:db8::1]")->to_string(), "2001:db8::1");
  EXPECT_FALSE(parseIpLiteral("mx.example.com"));
  EXPECT_FALSE(parseIpLiteral("2001:db8::1"));  // bare IPv6 is not an SMTP literal
  EXPECT_FALSE(parseIpLiteral("[mx]"));
}

TEST(MxOrder, SortedWithEqualPreferencesShuffled) {
  std::mt19937 rng(1);
  bool sawBFirst = false, sawCFirst = false;
  for (int i = 0; i < 50; ++i) {
    std::vector<MxRecord> mx = {{"c", 20}, {"a", 10}, {"b", 20}, {"d", 30}};
    orderByPreference(mx, rng);
    EXPECT_EQ(mx[0].host, "a");
    EXPECT_EQ(mx[3].host, "d");
    (mx[1].host == "b" ? sawBFirst : sawCFirst) = true;
  }
  EXPECT_TRUE(sawBFirst && sawCFirst);
}

TEST(IpMe, ExcludesOnRequest) {
  auto me = IpMe::fromInterfaces({});
  EXPECT_TRUE(me.contains(asio::ip::make_address("0.0.0.0")));
  EXPECT_TRUE(me.contains(asio::ip::make_address("127.0.0.1")));
  EXPECT_FALSE(me.contains(asio::ip::make_address("127.0.0.2")));  // only interface addresses
  auto ex = IpMe::fromInterfaces({asio::ip::make_address("127.0.0.1")});
  EXPECT_FALSE(ex.contains(asio::ip::make_address("127.0.0.1")));
}

TEST(ParseRequest, ValidAndMalformed) {
  DeliveryRequest req;
  std::string why;
  ASSERT_TRUE(parseRequest("13:qtls-remote/1,11:example.com,5:a@b.c,7:x@y.com,3:z@w,", req, why))
      << why;
  EXPECT_EQ(req.host, "example.com");
  EXPECT_EQ(req.sender, "a@b.c");
  EXPECT_EQ(req.recipients, (std::vector<std::string>{"x@y.com", "z@w"}));
  EXPECT_EQ(req.frontend, "shim");
  EXPECT_TRUE(parseRequest("13:qtls-remote/1,1:h,0:,1:r,", req, why));  // empty sender is fine
  EXPECT_TRUE(parseRequest("13:qtls-rspawn/1,1:h,0:,1:r,", req, why));
  EXPECT_EQ(req.frontend, "rspawn");
  EXPECT_FALSE(parseRequest("13:qtls-remote/2,1:h,0:,1:r,", req, why));
  EXPECT_EQ(why, "unsupported protocol version (want qtls-remote/1 or qtls-rspawn/1)");
  EXPECT_FALSE(parseRequest("13:qtls-remote/1,1:h,0:,", req, why));
  EXPECT_FALSE(parseRequest("13:qtls-remote/1,1:h,0:,5:r,", req, why));
  EXPECT_FALSE(parseRequest("13:qtls-remote/1,1:h,0:,3:a\rb,", req, why));
  EXPECT_EQ(why, "CR, LF or NUL in an argument");
}

}  // namespace
}  // namespace qtls::remoted
