// The agent's pieces that need no socket: command-line framing, the client key for connection
// limits, and the registry's choice of the idlest session.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include "listener.h"
#include "session_registry.h"
#include "smtp_input.h"

namespace qtls::agent {
namespace {

TEST(LineReader, LinesAndTheLengthBound) {
  LineReader r(10);
  std::string line;
  r.append("NOOP\r\nHE");
  EXPECT_EQ(r.next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "NOOP");
  EXPECT_EQ(r.next(line), LineReader::Result::kNeedMore);
  EXPECT_TRUE(r.midLine());
  r.append("LO a-very-long-name\r\nQUIT\r\n");
  EXPECT_EQ(r.next(line), LineReader::Result::kTooLong);
  EXPECT_EQ(r.next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "QUIT");
  EXPECT_FALSE(r.midLine());
  // Over the bound without LF: dropped, never buffered, until its LF.
  r.append(std::string(50, 'x'));
  EXPECT_LE(r.buffer().size(), 10u);
  EXPECT_TRUE(r.midLine());
  r.append("yyy\r\nRSET\r\n");
  EXPECT_EQ(r.next(line), LineReader::Result::kTooLong);
  EXPECT_EQ(r.next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "RSET");
}

TEST(SplitCommand, VerbLowercasedArgKept) {
  std::string verb;
  std::string_view arg;
  splitCommand("MaIl FROM:<a@b>", verb, arg);
  EXPECT_EQ(verb, "mail");
  EXPECT_EQ(arg, "FROM:<a@b>");
  splitCommand("QUIT", verb, arg);
  EXPECT_EQ(verb, "quit");
  EXPECT_TRUE(arg.empty());
}

TEST(ClientKey, Ipv6PerPrefixIpv4AsIs) {
  auto a = [](const char* s) { return asio::ip::make_address(s); };
  EXPECT_EQ(clientKey(a("2001:db8:1:2:aaaa::1"), 64), a("2001:db8:1:2::"));
  EXPECT_EQ(clientKey(a("2001:db8:1:2:aaaa::1"), 64), clientKey(a("2001:db8:1:2:bbbb::9"), 64));
  EXPECT_NE(clientKey(a("2001:db8:1:2::1"), 64), clientKey(a("2001:db8:1:3::1"), 64));
  EXPECT_EQ(clientKey(a("2001:db8:1:2:aaaa::1"), 48), a("2001:db8:1::"));
  EXPECT_EQ(clientKey(a("2001:db8::1"), 128), a("2001:db8::1"));
  EXPECT_EQ(clientKey(a("2001:db8:1:2:aaaa::1"), 60), a("2001:db8:1::"));
  EXPECT_EQ(clientKey(a("192.0.2.7"), 64), a("192.0.2.7"));
  EXPECT_EQ(clientKey(a("::ffff:192.0.2.7"), 64), a("192.0.2.7"));
}

struct Recorder : SessionControl {
  std::vector<Close> got;
  void close(Close how) override { got.push_back(how); }
};

TEST(SessionRegistry, EvictsTheIdlestIdleSessionOnly) {
  asio::io_context io;
  SessionRegistry reg;
  auto a = std::make_shared<Recorder>(), b = std::make_shared<Recorder>(),
       c = std::make_shared<Recorder>();
  const auto now = SessionRegistry::Clock::now();
  auto ia = reg.add(a, io.get_executor()), ib = reg.add(b, io.get_executor());
  reg.add(c, io.get_executor());
  reg.setIdle(ia, true, now - std::chrono::seconds(5));
  reg.setIdle(ib, true, now - std::chrono::seconds(20));  // c stays busy
  EXPECT_FALSE(reg.evictIdlest(std::chrono::seconds(30)));
  EXPECT_TRUE(reg.evictIdlest(std::chrono::seconds(1)));
  io.run();
  EXPECT_TRUE(a->got.empty());
  ASSERT_EQ(b->got.size(), 1u);
  EXPECT_EQ(b->got[0], SessionControl::Close::kEvict);
  EXPECT_TRUE(reg.evictIdlest(std::chrono::seconds(1)));  // then a; b is not chosen twice
  EXPECT_FALSE(reg.evictIdlest(std::chrono::seconds(1)));
  io.restart();
  io.run();
  EXPECT_EQ(a->got.size(), 1u);
  EXPECT_TRUE(c->got.empty());
  reg.closeAll(SessionControl::Close::kWhenIdle);
  io.restart();
  io.run();
  EXPECT_EQ(c->got.size(), 1u);
}

}  // namespace
}  // namespace qtls::agent
