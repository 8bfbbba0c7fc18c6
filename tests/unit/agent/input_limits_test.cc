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
  // The reserve's grouping (--reserve-ipv6-prefix 48): two /64s of one site are one client.
  EXPECT_EQ(clientKey(a("2001:db8:1:2::1"), 48), a("2001:db8:1::"));
  EXPECT_EQ(clientKey(a("2001:db8:1:ff00::9"), 48), clientKey(a("2001:db8:1:2::1"), 48));
  EXPECT_NE(clientKey(a("2001:db8:2::1"), 48), clientKey(a("2001:db8:1::1"), 48));
  EXPECT_EQ(clientKey(a("192.0.2.7"), 64), a("192.0.2.7"));
  EXPECT_EQ(clientKey(a("::ffff:192.0.2.7"), 64), a("192.0.2.7"));
}

struct Recorder : SessionControl {
  std::vector<Close> got;
  void close(Close how) override { got.push_back(how); }
};

TEST(SessionRegistry, EvictsTheWaitingSessionLongestWithoutProgressOnly) {
  asio::io_context io;
  SessionRegistry reg;
  auto a = std::make_shared<Recorder>(), b = std::make_shared<Recorder>(),
       c = std::make_shared<Recorder>();
  const auto now = SessionRegistry::Clock::now();
  auto ia = reg.add(a, io.get_executor()), ib = reg.add(b, io.get_executor());
  auto ic = reg.add(c, io.get_executor());
  reg.progress(ia, now - std::chrono::seconds(5));
  reg.progress(ib, now - std::chrono::seconds(20));
  reg.progress(ic, now - std::chrono::seconds(60));
  reg.setWaiting(ia, true);
  reg.setWaiting(ib, true);  // c stays busy (qmail-queue, say): never evicted, however old
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

TEST(SessionRegistry, ProgressNotWaitingKeepsASessionAndANewOneHasItsGrace) {
  asio::io_context io;
  SessionRegistry reg;
  auto busy = std::make_shared<Recorder>(), fresh = std::make_shared<Recorder>();
  const auto now = SessionRegistry::Clock::now();
  auto ib = reg.add(busy, io.get_executor()), ifr = reg.add(fresh, io.get_executor());
  reg.setWaiting(ib, true);
  reg.setWaiting(ifr, true);
  // A session sending NOOP after NOOP is waiting and makes no progress: evictable once old.
  reg.progress(ib, now - std::chrono::seconds(30));
  EXPECT_FALSE(reg.evictIdlest(std::chrono::seconds(31)));
  // The fresh session's start counts as progress: it is not evictable before its grace.
  reg.progress(ib, now);  // a RCPT accepted
  EXPECT_FALSE(reg.evictIdlest(std::chrono::seconds(5)));
  reg.progress(ib, now - std::chrono::seconds(30));
  EXPECT_TRUE(reg.evictIdlest(std::chrono::seconds(5)));
  io.run();
  EXPECT_EQ(busy->got.size(), 1u);
  EXPECT_TRUE(fresh->got.empty());
}

}  // namespace
}  // namespace qtls::agent
