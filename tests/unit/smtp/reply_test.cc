#include "smtp/reply.h"

#include <gtest/gtest.h>

namespace qtls::smtp {
namespace {

ReplyParser parse(std::string_view in, size_t* used = nullptr) {
  ReplyParser p;
  size_t n = p.feed(in);
  if (used) *used = n;
  return p;
}

TEST(ReplyParser, SingleLineDropsCr) {
  auto p = parse("250 ok\r\n");
  ASSERT_EQ(p.state(), ReplyParser::State::kDone);
  EXPECT_EQ(p.reply().code, 250);
  EXPECT_EQ(p.reply().text, "250 ok\n");
}

TEST(ReplyParser, MultiLineKeepsEveryLineAndFirstCode) {
  auto p = parse("550-5.1.1 a\r\n550 5.1.1 b\r\n");
  ASSERT_EQ(p.state(), ReplyParser::State::kDone);
  EXPECT_EQ(p.reply().code, 550);
  EXPECT_EQ(p.reply().text, "550-5.1.1 a\n550 5.1.1 b\n");
}

TEST(ReplyParser, StopsAtTheEndOfTheReply) {
  size_t used = 0;
  auto p = parse("220 hi\r\n250 next\r\n", &used);
  EXPECT_EQ(used, 8u);
  EXPECT_EQ(p.reply().code, 220);
}

TEST(ReplyParser, ByteAtATime) {
  ReplyParser p;
  std::string in = "250-a\r\n250-STARTTLS\r\n250 SIZE 100\r\n";
  for (char c : in) p.feed(std::string_view(&c, 1));
  ASSERT_EQ(p.state(), ReplyParser::State::kDone);
  auto kw = ehloKeywords(p.reply());
  EXPECT_EQ(kw, (std::vector<std::string>{"STARTTLS", "SIZE"}));
}

TEST(ReplyParser, NonNumericCodeIsAProtocolError) {
  EXPECT_EQ(parse("2x0 ok\r\n").state(), ReplyParser::State::kError);
  EXPECT_EQ(parse("hello\r\n").state(), ReplyParser::State::kError);
  EXPECT_EQ(parse("250xok\r\n").state(), ReplyParser::State::kError);
  EXPECT_EQ(parse("25\r\n").state(), ReplyParser::State::kError);
  EXPECT_EQ(parse("250\r\n").state(), ReplyParser::State::kDone);
}

TEST(ReplyParser, ContinuationLineWithGarbageCodeIsAnError) {
  EXPECT_EQ(parse("250-ok\r\nxyz end\r\n").state(), ReplyParser::State::kError);
}

TEST(ReplyParser, KeepsAtMost5000BytesOfText) {
  std::string in;
  for (int i = 0; i < 200; ++i) in += "250-" + std::string(60, 'x') + "\r\n";
  in += "250 end\r\n";
  auto p = parse(in);
  ASSERT_EQ(p.state(), ReplyParser::State::kDone);
  EXPECT_EQ(p.reply().text.size(), kMaxKeptReplyText);
}

TEST(ReplyParser, RefusesUnboundedReplies) {
  std::string in;
  while (in.size() <= kMaxReplyBytes) in += "250-" + std::string(100, 'y') + "\r\n";
  EXPECT_EQ(parse(in).state(), ReplyParser::State::kError);
}

TEST(EhloKeywords, StripsParametersAndEqualsForms) {
  Reply r{250, "250-mx.example.com hello\n250-AUTH=LOGIN PLAIN\n250-8BITMIME\n250 starttls\n"};
  auto kw = ehloKeywords(r);
  EXPECT_EQ(kw, (std::vector<std::string>{"AUTH", "8BITMIME", "starttls"}));
  EXPECT_TRUE(hasKeyword(kw, "STARTTLS"));
  EXPECT_FALSE(hasKeyword(kw, "PIPELINING"));
}

}  // namespace
}  // namespace qtls::smtp
