// The outbound dialogue against a scripted server over a socketpair (tests/fakes): pipelined
// and lock-step give the spec's report bytes at every stage; a connection serves the next
// delivery and is retired on idle expiry and policy change; one found dead before MAIL was
// accepted sends the delivery to a new connection with nothing reported; connection caps and
// dead hosts.
#include "dialogue.h"

#include <gtest/gtest.h>
#include <stdio.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
#include <memory>

#include "../../fakes/fake_clock.h"
#include "../../fakes/fake_smtp_server.h"
#include "conn_cache.h"
#include "conn_limits.h"
#include "dead_hosts.h"

namespace qtls::remoted {
namespace {

using namespace std::string_literals;
using testing::FakeSmtpServer;
using testing::SmtpScript;

class DialogueTest : public ::testing::Test {
 protected:
  DialogueTest() {
    cfg_ = std::make_shared<RemoteConfig>();
    cfg_->helohost = "qtls.test";
    cfg_->digest = "sha256:one";
    cfg_->timeoutConnect = 5;
    cfg_->timeoutRemote = 5;
    cfg_->plainContext = absl::UnavailableError("no TLS in these tests");
    deps_.config = cfg_;
    deps_.pool = io_.get_executor();
    deps_.connector = [this](SmtpConn& c, const asio::ip::tcp::endpoint&,
                             std::chrono::seconds) -> asio::awaitable<std::error_code> {
      int sv[2];
      ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
      servers_.push_back(std::make_unique<FakeSmtpServer>(sv[1], script_));
      co_return c.adopt(sv[0]);
    };
    Target t;
    t.address = asio::ip::make_address("192.0.2.7");
    t.fqdn = "mx.test";
    targets_.targets.push_back(t);
    message_ = ::tmpfile();
    std::fputs("Subject: t\n\nhello\n", message_);
    std::fflush(message_);
  }
  ~DialogueTest() override {
    servers_.clear();
    std::fclose(message_);
  }

  struct Delivery {
    std::string report;
    bool reused = false;
    std::shared_ptr<SmtpConn> openConn;
  };
  Delivery deliver(std::vector<std::string> rcpts = {"u@example.test"}) {
    DeliveryRequest req;
    req.host = "example.test";
    req.sender = "a@sender.test";
    req.recipients = std::move(rcpts);
    ::lseek(::fileno(message_), 0, SEEK_SET);
    req.messageFd = ::fileno(message_);
    DeliveryResult out;
    DeliveryControl control;
    Dialogue s(deps_, req, control, out);
    asio::co_spawn(asio::make_strand(io_), s.run(targets_), asio::detached);
    io_.restart();
    io_.run();
    return Delivery{out.report.bytes(), s.reused(), out.openConn};
  }
  // Runs what was spawned meanwhile (QUITs of retired connections).
  void settle() {
    io_.restart();
    io_.run();
  }

  asio::io_context io_;
  std::shared_ptr<RemoteConfig> cfg_;
  DeliveryDeps deps_;
  TargetList targets_;
  SmtpScript script_;
  std::vector<std::unique_ptr<FakeSmtpServer>> servers_;
  FILE* message_;
};

TEST_F(DialogueTest, PipeliningSendsOneBatchAndReportsAsLockStep) {
  const std::vector<std::string> rcpts = {"a@example.test", "b@example.test", "c@example.test"};
  script_.rcpt = {"250 ok", "550 no such user", "451 try later"};
  const Delivery piped = deliver(rcpts);
  ASSERT_EQ(servers_.size(), 1u);
  // EHLO alone, then MAIL, three RCPTs and DATA in one read.
  EXPECT_EQ(servers_[0]->perRead().at(1), 5);
  script_.pipelining = false;
  const Delivery lockStep = deliver(rcpts);
  EXPECT_EQ(piped.report, lockStep.report);
  EXPECT_EQ(piped.report,
            "r\0h192.0.2.7 does not like recipient.\nRemote host said: 550 no such user\n\0"
            "s192.0.2.7 does not like recipient.\nRemote host said: 451 try later\n\0"
            "K192.0.2.7 accepted message.\nRemote host said: 250 ok queued\n\0"s);
  for (int n : servers_[1]->perRead()) EXPECT_EQ(n, 1);  // lock-step: one command per read
}

// Each stage's refusal, with the exact bytes of spec/qmail-compat.md section 2.8-2.10, pipelined
// and lock-step alike; lock-step sends no command after the one that ended the transaction.
TEST_F(DialogueTest, EveryRefusalReportsTheSpecBytesPipelinedOrNot) {
  struct Case {
    const char* name;
    std::map<std::string, std::string> replies;
    std::vector<std::string> rcpt;
    std::string report;
    std::vector<std::string> lockStepVerbs;  // after EHLO
  };
  const std::vector<Case> cases = {
      {"sender refused",
       {{"MAIL", "553 sender refused"}},
       {},
       "DConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 sender "
       "refused\n\0"s,
       {"MAIL"}},
      {"sender deferred",
       {{"MAIL", "451 later"}},
       {},
       "ZConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 451 later\n\0"s,
       {"MAIL"}},
      {"every recipient refused",
       {{"DATA", "554 no valid recipients"}},
       {"550 no", "450 full"},
       "h192.0.2.7 does not like recipient.\nRemote host said: 550 no\n\0"
       "s192.0.2.7 does not like recipient.\nRemote host said: 450 full\n\0"
       "DGiving up on 192.0.2.7.\n\0"s,
       {"MAIL", "RCPT", "RCPT"}},
      {"DATA refused",
       {{"DATA", "451 not now"}},
       {},
       "r\0r\0Z192.0.2.7 failed on DATA command.\nRemote host said: 451 not now\n\0"s,
       {"MAIL", "RCPT", "RCPT", "DATA"}},
      {"DATA refused for good",
       {{"DATA", "554 no"}},
       {},
       "r\0r\0D192.0.2.7 failed on DATA command.\nRemote host said: 554 no\n\0"s,
       {"MAIL", "RCPT", "RCPT", "DATA"}},
      {"DATA odd",
       {{"DATA", "250 ok"}},
       {},
       "r\0r\0ZConnected to 192.0.2.7 but the reply was malformed (DATA answered with 250, "
       "not 354). (#4.4.2)\n\0"s,
       {"MAIL", "RCPT", "RCPT", "DATA"}},
      {"dot deferred",
       {{"DOT", "452 later"}},
       {},
       "r\0r\0Z192.0.2.7 failed after I sent the message.\nRemote host said: 452 later\n\0"s,
       {"MAIL", "RCPT", "RCPT", "DATA"}},
      {"dot refused",
       {{"DOT", "552 too big"}},
       {},
       "r\0r\0D192.0.2.7 failed after I sent the message.\nRemote host said: 552 too big\n\0"s,
       {"MAIL", "RCPT", "RCPT", "DATA"}},
  };
  for (const Case& c : cases) {
    script_.replies = c.replies;
    script_.rcpt = c.rcpt;
    script_.pipelining = true;
    EXPECT_EQ(deliver({"a@example.test", "b@example.test"}).report, c.report) << c.name;
    script_.pipelining = false;
    EXPECT_EQ(deliver({"a@example.test", "b@example.test"}).report, c.report) << c.name;
    std::vector<std::string> verbs;
    for (const std::string& cmd : servers_.back()->commands()) {
      std::string verb = cmd.substr(0, cmd.find(' '));
      if (verb != "EHLO" && verb != "QUIT" && verb != "RSET") verbs.push_back(verb);
    }
    EXPECT_EQ(verbs, c.lockStepVerbs) << c.name;
  }
}

// What becomes of the connection is the failure table's word for how the delivery ended:
// QUIT (left to the intake as openConn), closed, or the cache.
TEST_F(DialogueTest, TheFailureTableSaysWhatBecomesOfTheConnection) {
  script_.replies = {{"EHLO", "502 what"}, {"HELO", "550 not you"}};
  Delivery d = deliver();
  EXPECT_EQ(d.report,
            "ZConnected to 192.0.2.7 but my name was rejected.\nRemote host said: 550 "
            "not you\n\0"s);
  EXPECT_TRUE(d.openConn);  // helo: QUIT
  // A pipelined MAIL refused: the replies to the RCPTs and DATA are still owed: closed.
  script_.replies = {{"MAIL", "553 no"}};
  d = deliver();
  EXPECT_EQ(d.report.substr(0, 1), "D");
  EXPECT_FALSE(d.openConn);
  // The same refusal lock-step: QUIT.
  script_.pipelining = false;
  d = deliver();
  EXPECT_EQ(d.report.substr(0, 1), "D");
  EXPECT_TRUE(d.openConn);
  // A K after a 421 to a RCPT: QUIT, never the cache.
  ConnCache cache(ConnCache::Options{}, nullptr);
  cache.retire(cfg_->digest);
  deps_.cache = &cache;
  script_ = SmtpScript();
  script_.rcpt = {"421 closing soon", "250 ok"};
  d = deliver({"a@example.test", "b@example.test"});
  EXPECT_NE(d.report.find("K192.0.2.7 accepted message."), std::string::npos);
  EXPECT_TRUE(d.openConn);
  EXPECT_EQ(cache.idle(), 0u);
  // A clean K: the cache, no QUIT.
  script_.rcpt.clear();
  d = deliver();
  EXPECT_FALSE(d.openConn);
  EXPECT_EQ(cache.idle(), 1u);
}

TEST_F(DialogueTest, ACachedConnectionServesTheNextDeliveryAndIsRetired) {
  ConnCache cache(ConnCache::Options{}, nullptr);
  cache.retire(cfg_->digest);  // the policy in force
  deps_.cache = &cache;
  const Delivery first = deliver();
  const Delivery second = deliver();
  ASSERT_EQ(servers_.size(), 1u);  // one connection for both
  EXPECT_FALSE(first.reused);
  EXPECT_TRUE(second.reused);
  EXPECT_EQ(first.report, second.report);
  EXPECT_EQ(servers_[0]->messages(), 2);
  const auto cmds = servers_[0]->commands();
  EXPECT_EQ(std::count(cmds.begin(), cmds.end(), "EHLO qtls.test"), 1);
  EXPECT_EQ(cache.idle(), 1u);
  // A policy change: the idle connection gets QUIT.
  cache.retire("sha256:two");
  settle();
  servers_[0]->waitClosed();
  EXPECT_TRUE(servers_[0]->quitSeen());
  EXPECT_EQ(cache.idle(), 0u);
  // Made under the new policy from now on.
  cfg_->digest = "sha256:two";
  deliver();
  EXPECT_EQ(servers_.size(), 2u);
}

TEST_F(DialogueTest, IdleConnectionsExpire) {
  ConnCache::Options o;
  o.idle = std::chrono::milliseconds(50);
  testing::FakeClock clock;
  ConnCache cache(o, nullptr, clock);
  cache.retire(cfg_->digest);
  deps_.cache = &cache;
  deliver();
  EXPECT_EQ(cache.idle(), 1u);
  clock.advance(std::chrono::milliseconds(49));
  cache.sweep();
  EXPECT_EQ(cache.idle(), 1u);  // not yet
  clock.advance(std::chrono::milliseconds(2));
  cache.sweep();
  settle();
  servers_[0]->waitClosed();
  EXPECT_TRUE(servers_[0]->quitSeen());
  deliver();
  EXPECT_EQ(servers_.size(), 2u);
}

TEST_F(DialogueTest, AConnectionClosedWhileIdleIsNotUsed) {
  ConnCache cache(ConnCache::Options{}, nullptr);
  cache.retire(cfg_->digest);
  deps_.cache = &cache;
  script_.closeAfterTransaction = true;
  const Delivery first = deliver();
  servers_[0]->waitClosed();
  const Delivery second = deliver();
  EXPECT_EQ(servers_.size(), 2u);
  EXPECT_FALSE(second.reused);
  EXPECT_EQ(first.report, second.report);
}

TEST_F(DialogueTest, DeadBeforeMailGoesOnANewConnectionWithNothingReported) {
  for (bool pipelining : {true, false}) {
    SCOPED_TRACE(pipelining);
    ConnCache cache(ConnCache::Options{}, nullptr);
    cache.retire(cfg_->digest);
    deps_.cache = &cache;
    servers_.clear();
    script_.pipelining = pipelining;
    script_.mailOverrideFrom = 2;  // the reused connection answers MAIL with 421
    script_.mailOverride = "421 fake.test closing";
    const Delivery first = deliver();
    script_.mailOverrideFrom = 0;  // the new connection is fine
    const Delivery second = deliver();
    ASSERT_EQ(servers_.size(), 2u);
    EXPECT_EQ(first.report, second.report);
    EXPECT_EQ(second.report.find("421"), std::string::npos);
    EXPECT_EQ(servers_[0]->messages(), 1);
    EXPECT_EQ(servers_[1]->messages(), 1);
    cache.retire("");
    settle();
  }
}

TEST_F(DialogueTest, OverTheConnectionCapTheDeliveryIsDeferred) {
  ConnLimits limits(ConnLimits::Options{1, 10, std::chrono::milliseconds(100)}, nullptr);
  deps_.limits = &limits;
  DeliveryControl holder;
  ConnLimits::Slot held;
  asio::co_spawn(
      io_, [&]() -> asio::awaitable<void> { held = co_await limits.acquire("192.0.2.7", holder); },
      asio::detached);
  settle();
  ASSERT_TRUE(held);
  EXPECT_EQ(deliver().report,
            "ZSorry, too many connections to 192.0.2.7 are in use; none came free within 0.1 "
            "seconds. (#4.4.5)\n\0"s);
  EXPECT_TRUE(servers_.empty());
  held.release();
  EXPECT_EQ(deliver().report.substr(0, 3), std::string("r\0K", 3));
}

// The walk over the addresses: a refused connect and a host tcpto calls dead send the delivery
// to the next address; once a connection is up, whatever it ends in stops the walk.
TEST_F(DialogueTest, TheWalkGoesOnOnlyWhereTheTableSaysNext) {
  Target second = targets_.targets[0];
  second.address = asio::ip::make_address("192.0.2.8");
  Target third = targets_.targets[0];
  third.address = asio::ip::make_address("192.0.2.9");
  targets_.targets = {targets_.targets[0], second, third};
  std::vector<std::string> tried;
  deps_.connector = [&](SmtpConn& c, const asio::ip::tcp::endpoint& ep,
                        std::chrono::seconds) -> asio::awaitable<std::error_code> {
    tried.push_back(ep.address().to_string());
    if (ep.address().to_string() == "192.0.2.7")
      co_return std::make_error_code(std::errc::connection_refused);
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    servers_.push_back(std::make_unique<FakeSmtpServer>(sv[1], script_));
    co_return c.adopt(sv[0]);
  };
  // 192.0.2.7 refuses: on to 192.0.2.8, which greets with 554: deferred, 192.0.2.9 untried.
  script_.replies = {{"GREETING", "554 go away"}};
  Delivery d = deliver();
  EXPECT_EQ(tried, (std::vector<std::string>{"192.0.2.7", "192.0.2.8"}));
  EXPECT_EQ(d.report.substr(0, 27), "ZConnected to 192.0.2.8 but");
  // tcpto calls 192.0.2.8 dead: skipped without a connect.
  testing::FakeClock clock;
  DeadHosts dead(nullptr, std::chrono::seconds(3840), clock);
  dead.timedOut(second.address);
  clock.advance(std::chrono::seconds(121));
  dead.timedOut(second.address);
  deps_.deadHosts = &dead;
  script_.replies.clear();
  tried.clear();
  d = deliver();
  EXPECT_EQ(tried, (std::vector<std::string>{"192.0.2.7", "192.0.2.9"}));
  EXPECT_EQ(d.report.substr(0, 3), std::string("r\0K", 3));
  // None takes a connection: the walk's own ending.
  targets_.targets = {targets_.targets[0]};
  tried.clear();
  EXPECT_EQ(deliver().report,
            "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"s);
}

TEST(DeadHosts, QmailTcptoRules) {
  testing::FakeClock clock;
  DeadHosts d(nullptr, std::chrono::seconds(3840), clock);
  const auto a = asio::ip::make_address("192.0.2.9");
  d.timedOut(a);
  EXPECT_FALSE(d.skip(a));  // one timeout is not enough
  clock.advance(std::chrono::seconds(60));
  d.timedOut(a);  // within 120 s of the last: not counted
  EXPECT_FALSE(d.skip(a));
  clock.advance(std::chrono::seconds(121));
  d.timedOut(a);
  std::string why;
  EXPECT_TRUE(d.skip(a, &why));
  EXPECT_EQ(why, "2 connect timeouts, the last 0 s ago");
  clock.advance(std::chrono::seconds(3839));
  EXPECT_TRUE(d.skip(a));
  clock.advance(std::chrono::seconds(1));
  EXPECT_FALSE(d.skip(a));  // the backoff is over: tried again
  d.connected(a);
  clock.advance(std::chrono::seconds(1000));
  d.timedOut(a);
  EXPECT_FALSE(d.skip(a));  // a success forgot the earlier ones
}

}  // namespace
}  // namespace qtls::remoted
