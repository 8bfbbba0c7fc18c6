#include <gtest/gtest.h>

#include "smtp/address.h"
#include "smtp/body.h"

namespace qtls::smtp {
namespace {

TEST(QuoteAddress, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(quoteAddress("user@example.com"), "user@example.com");
  EXPECT_EQ(quoteAddress(""), "");
  EXPECT_EQ(quoteAddress("no-at-sign"), "no-at-sign");
  EXPECT_EQ(quoteAddress("@example.com"), "\"\"@example.com");
  EXPECT_EQ(quoteAddress("a b@example.com"), "\"a b\"@example.com");
  EXPECT_EQ(quoteAddress("a\"b@x"), "\"a\\\"b\"@x");
  EXPECT_EQ(quoteAddress(".a@x"), "\".a\"@x");
  EXPECT_EQ(quoteAddress("a..b@x"), "\"a..b\"@x");
  EXPECT_EQ(quoteAddress("a.b@x"), "a.b@x");
  EXPECT_EQ(quoteAddress("we@ird@x"), "\"we@ird\"@x");  // split at the last '@'
  EXPECT_EQ(quoteAddress("a\\b@x"), "\"a\\\\b\"@x");
}

std::string encode(std::string_view in, bool* ok = nullptr) {
  BodyEncoder e;
  std::string out;
  e.feed(in, out);
  bool done = e.finish(out);
  if (ok) *ok = done;
  return out;
}

TEST(BodyEncoder, LfToCrlfAndDotStuffing) {
  EXPECT_EQ(encode("a\n.b\n..c\nd.\n"), "a\r\n..b\r\n...c\r\nd.\r\n.\r\n");
  EXPECT_EQ(encode(""), ".\r\n");
  EXPECT_EQ(encode(".\n"), "..\r\n.\r\n");
}

TEST(BodyEncoder, CrIsSentUnchanged) { EXPECT_EQ(encode("a\r\nb\rc\n"), "a\r\r\nb\rc\r\n.\r\n"); }

TEST(BodyEncoder, PartialFinalLineIsRefused) {
  bool ok = true;
  encode("a\nno newline", &ok);
  EXPECT_FALSE(ok);
}

TEST(BodyEncoder, ChunkBoundariesDoNotMatter) {
  std::string in = "x\n.y\nz\n";
  BodyEncoder e;
  std::string out;
  for (char c : in) e.feed(std::string_view(&c, 1), out);
  ASSERT_TRUE(e.finish(out));
  EXPECT_EQ(out, encode(in));
}

TEST(BodyEncoder, EightBitAndNulPassThrough) {
  std::string in("\xe9\0t\n", 4);
  EXPECT_EQ(encode(in), std::string("\xe9\0t\r\n.\r\n", 8));
}

}  // namespace
}  // namespace qtls::smtp
