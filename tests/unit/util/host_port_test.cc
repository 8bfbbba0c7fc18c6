// The one parser of a listening address (util/host_port.h).
#include "util/host_port.h"

#include <gtest/gtest.h>

namespace qtls::text {
namespace {

TEST(HostPort, FormsAndRefusals) {
  auto v4 = parseHostPort("127.0.0.1:9741", "--metrics-listen");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9741u);
  auto v6 = parseHostPort("[::1]:25", "listener");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 25u);
  auto any = parseHostPort(":0", "listener");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->host, "");
  EXPECT_EQ(any->port, 0u);
  EXPECT_EQ(parseHostPort("localhost", "--admin-listen").status().message(),
            "--admin-listen localhost: want HOST:PORT");
  EXPECT_EQ(parseHostPort("h:", "listener").status().message(), "listener h:: want HOST:PORT");
  EXPECT_EQ(parseHostPort("h:9x", "listener").status().message(), "listener h:9x: want HOST:PORT");
  EXPECT_EQ(parseHostPort("h:65536", "listener").status().message(),
            "listener h:65536: no such port");
  EXPECT_EQ(parseHostPort("h:123456", "listener").status().message(),
            "listener h:123456: want HOST:PORT");
}

}  // namespace
}  // namespace qtls::text
