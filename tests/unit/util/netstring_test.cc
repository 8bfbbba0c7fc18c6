// The one netstring codec: a round trip, and the three answers of the incremental reader the
// shim parses the daemon's answers with (complete, needs more bytes, can never be one).
#include "util/netstring.h"

#include <gtest/gtest.h>

#include <string>

namespace qtls::text {
namespace {

TEST(Netstring, RoundTrip) {
  std::string wire;
  appendNetstring(wire, "qtls-remote/1");
  appendNetstring(wire, "");
  EXPECT_EQ(wire, "13:qtls-remote/1,0:,");
  std::string_view in(wire);
  std::string out;
  ASSERT_TRUE(readNetstring(in, out));
  EXPECT_EQ(out, "qtls-remote/1");
  ASSERT_TRUE(readNetstring(in, out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(in.empty());
}

TEST(Netstring, IncompleteUntilTheCommaArrives) {
  const std::string whole = "5:hello,";
  for (size_t n = 0; n < whole.size(); ++n) {
    std::string_view in(whole.data(), n);
    std::string out = "untouched";
    EXPECT_EQ(takeNetstring(in, out), NetstringRead::kIncomplete) << n;
    EXPECT_EQ(in.size(), n);
    EXPECT_EQ(out, "untouched");
  }
  std::string_view in(whole);
  std::string out;
  EXPECT_EQ(takeNetstring(in, out), NetstringRead::kComplete);
  EXPECT_EQ(out, "hello");
}

TEST(Netstring, MalformedAsSoonAsNoBytesCouldMendIt) {
  std::string out;
  // A colon first, a non-digit, the wrong terminator, too many digits, over the length limit.
  for (const char* bad : {":", "x", "1x", "5:hello;", "12345678:", "9:"}) {
    std::string_view in(bad);
    EXPECT_EQ(takeNetstring(in, out, 7, 8), NetstringRead::kMalformed) << bad;
    EXPECT_EQ(in, bad);  // nothing taken
  }
  // Seven digits are allowed with maxDigits 7; the eighth is not.
  std::string_view seven("1234567:");
  EXPECT_EQ(takeNetstring(seven, out, 7), NetstringRead::kIncomplete);
  std::string_view eight("12345678");
  EXPECT_EQ(takeNetstring(eight, out, 7), NetstringRead::kMalformed);
}

}  // namespace
}  // namespace qtls::text
