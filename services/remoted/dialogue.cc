// The outbound delivery over its connection: which connection (cached or new), its
// establishment (greeting, EHLO/HELO; the TLS steps are in session_tls.cc) and what happens
// to it afterwards. The transaction, MAIL to the final dot, is in transaction.cc.
#include "dialogue.h"

#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <cerrno>
#include <chrono>

#include "conn_cache.h"
#include "conn_limits.h"
#include "dead_hosts.h"
#include "log/log.h"
#include "smtp/reply.h"
#include "util/text.h"

namespace qtls::remoted {

void Dialogue::died(const SmtpConn::ReadResult* rr) {
  if (control_.stopped()) {
    EndingContext c = context();
    c.n = control_.limitSeconds;
    end(stopFailure(control_.reason(), !facts_.ip.empty()), c);
    return;
  }
  if (rr != nullptr && !rr->ec && !rr->protocolError.empty()) {
    outOfStep(rr->protocolError);
    return;
  }
  end(Failure::kDied, context());
}

void Dialogue::outOfStep(std::string_view what) {
  EndingContext c = context();
  c.detail = what;
  end(Failure::kMalformed, c);
}

void Dialogue::failed(std::string_view what) {
  if (conn_) SmtpConn::closeFromOutside(conn_);
  EndingContext c = context();
  c.arg = what;
  end(Failure::kInternal, c);
}

bool Dialogue::deadReused(const SmtpConn::ReadResult* rr) {
  if (origin_ != Origin::kCache || control_.stopped()) return false;
  return rr == nullptr || !rr->ok() || rr->reply.code == 421;
}

asio::awaitable<bool> Dialogue::reply(SmtpConn::ReadResult& rr, bool extraAllowed) {
  rr = co_await conn_->readReply();
  if (rr.ok() && !extraAllowed && conn_->buffered() > 0)
    rr.protocolError = "more than one reply at once";  // e.g. an injected extra 250 to RCPT
  if (!rr.ok()) {
    died(&rr);
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> Dialogue::command(std::string_view line, SmtpConn::ReadResult& rr,
                                        bool extraAllowed) {
  // A reply that came before its command answers nothing we said: every later reply would be
  // taken for the wrong command.
  if (conn_->unread() > 0) {
    outOfStep("a reply before the command was sent");
    co_return false;
  }
  if (auto ec = co_await conn_->write(line)) {
    died();
    co_return false;
  }
  co_return co_await reply(rr, extraAllowed);
}

asio::awaitable<bool> Dialogue::greeting(bool implicit) {
  SmtpConn::ReadResult rr;
  if (!co_await reply(rr)) co_return false;
  if (rr.reply.code != 220) {
    end(implicit ? Failure::kGreetingTls : Failure::kGreeting, context(&rr.reply));
    co_return false;
  }
  co_return true;
}

// Greeting, EHLO, STARTTLS and the checks, EHLO again (or HELO): the connection is ready for
// transactions. Returns false when the report is final.
asio::awaitable<bool> Dialogue::establish(const Target& t, const TlsPlan& plan, unsigned port) {
  SmtpConn::ReadResult rr;
  const bool implicit = port == 465;
  int code = 0;
  bool tlsDone = false;
  std::vector<std::string> keywords;
  facts_.seen.target = t;
  facts_.seen.implicit = implicit;
  if (implicit) {
    facts_.seen.reached = true;
    if (!co_await startTls(t, plan, true, tlsDone)) co_return false;
    if (!co_await greeting(true)) co_return false;
  } else {
    if (!co_await greeting(false)) co_return false;
    if (!co_await command(text::cat("EHLO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    code = rr.reply.code;
    if (code == 250) keywords = smtp::ehloKeywords(rr.reply);
    facts_.seen.reached = true;
    facts_.seen.starttlsOffered = smtp::hasKeyword(keywords, "STARTTLS");
    // No STARTTLS keyword (or EHLO refused): a required level fails, the others go on in
    // plain text.
    if (!facts_.seen.starttlsOffered) {
      if (policy::tlsRequired(plan.decision.level)) {
        EndingContext c = context();
        c.arg = plan.sentence;
        end(Failure::kStarttlsNotOffered, c);
        co_return false;
      }
    } else if (!co_await startTls(t, plan, false, tlsDone)) {
      co_return false;
    }
  }
  if (implicit || tlsDone) {
    if (!co_await command(text::cat("EHLO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    code = rr.reply.code;
    keywords.clear();
    if (code == 250) keywords = smtp::ehloKeywords(rr.reply);
  }
  if (code != 250) {
    keywords.clear();
    if (!co_await command(text::cat("HELO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    if (rr.reply.code != 250) {
      end(Failure::kHelo, context(&rr.reply));
      co_return false;
    }
  }
  facts_.pipelining = deps_.pipelining && smtp::hasKeyword(keywords, "PIPELINING");
  co_return true;
}

asio::awaitable<Dialogue::Ended> Dialogue::fresh(const Target& t, const TlsPlan& plan,
                                                 unsigned port) {
  stage_ = Stage::kOpening;
  if (!co_await establish(t, plan, port)) co_return Ended::kReported;
  co_return co_await transaction();
}

asio::awaitable<Dialogue::Ended> Dialogue::reuse() { co_return co_await transaction(); }

// What becomes of the connection once the delivery ended on it: what the failure table said of
// that ending (failure_table.h), unless the delivery was stopped (then it is closed). The
// cache may still decline it (ConnCache::put QUITs it then).
void Dialogue::settle(ConnCache::Entry entry) {
  Conn fate = report_.final().conn;
  if (control_.stopped()) fate = Conn::kClose;
  if (fate == Conn::kCache && !(deps_.cache && deps_.cache->enabled())) fate = Conn::kQuit;
  switch (fate) {
    case Conn::kCache:
      deps_.cache->put(key_, std::move(entry));
      break;
    case Conn::kQuit:
      out_.openConn = conn_;  // the intake QUITs it once the shim has its answer
      break;
    case Conn::kClose:
    case Conn::kNone:
      SmtpConn::closeFromOutside(conn_);
      break;
  }
}

// The one walk over the targets, in the order targets.cc gave them: each address is tried,
// and the failure table's `next` for how that try ended says whether the walk goes on. What
// may send a delivery to the next address (tcpto, a refused connect; DANE and MTA-STS checks to
// come) is a row of the table, not a branch here.
asio::awaitable<void> Dialogue::run(const TargetList& targets) {
  for (const auto& t : targets.targets) {
    if (control_.stopped()) break;
    if (co_await tryAddress(t, targets.port) == Next::kStop) co_return;
  }
  EndingContext c;
  c.n = control_.limitSeconds;
  end(control_.stopped() ? stopFailure(control_.reason(), false) : Failure::kNoConnection, c);
}

// One address: tcpto's word, a connection slot, an idle connection from the cache (one found
// dead sends the delivery to the next one, then to a new connection, with nothing reported),
// else a new connection; the dialogue; then the connection's fate. A stop met on the way
// returns kNextAddress: the walk sees it and reports it.
asio::awaitable<Next> Dialogue::tryAddress(const Target& t, unsigned port) {
  const std::string address = t.address.to_string();
  const std::string relay = text::cat(t.fqdn.empty() ? "-" : t.fqdn, "[", address, "]:", port);
  std::string why;
  if (deps_.deadHosts && deps_.deadHosts->skip(t.address, &why)) {
    log::info(text::cat("remote connect relay=", relay, " skipped: ", why, " (tcpto)"));
    co_return rowOf(Failure::kTcptoSkipped).next;
  }
  const TlsPlan plan = makePlan(cfg_, req_.host, t);
  key_ = connectionKey(cfg_, plan, t, port);
  ConnLimits::Slot slot;
  if (deps_.limits) {
    slot = co_await deps_.limits->acquire(address, control_);
    if (!slot) {
      if (control_.stopped()) co_return Next::kNextAddress;
      EndingContext c;
      c.ip = address;
      c.seconds = std::chrono::duration<double>(deps_.limits->options().wait).count();
      end(Failure::kBusy, c);
      co_return rowOf(Failure::kBusy).next;
    }
  }
  const Clock& clock = deps_.cache ? deps_.cache->clock() : Clock::steady();
  auto created = clock.now();
  unsigned transactions = 0;
  Ended ended = Ended::kDeadReused;
  while (deps_.cache && ended == Ended::kDeadReused) {
    auto e = deps_.cache->take(key_);
    if (!e) break;
    conn_ = e->conn;
    control_.attach(conn_);
    facts_ = e->facts;
    facts_.policySource = std::string(policy::sourceName(plan.decision.source));
    created = e->created;
    transactions = e->transactions;
    origin_ = Origin::kCache;
    ended = co_await onConn(conn_, reuse());
    if (ended == Ended::kDeadReused) {  // the table's reused_dead: the same address, anew
      if (metrics_) metrics_->connCache.with({"dead"}).add(1);
      log::info(text::cat("remote relay=", facts_.relay,
                          " cached connection found dead; trying a new one"));
      SmtpConn::closeFromOutside(conn_);
      conn_.reset();
      origin_ = Origin::kNew;
      stage_ = Stage::kConnecting;
      facts_ = ConnFacts();
    }
  }
  if (ended == Ended::kDeadReused) {
    if (control_.stopped()) co_return Next::kNextAddress;
    auto conn = std::make_shared<SmtpConn>(asio::make_strand(deps_.pool));
    control_.attach(conn);
    asio::ip::tcp::endpoint ep(t.address, static_cast<unsigned short>(port));
    std::error_code ec = co_await onConn(
        conn, deps_.connector
                  ? deps_.connector(*conn, ep, std::chrono::seconds(cfg_.timeoutConnect))
                  : conn->connect(ep, std::chrono::seconds(cfg_.timeoutConnect)));
    if (ec) {
      log::info(text::cat("remote connect relay=", relay, " error=", log::value(ec.message())));
      if (deps_.deadHosts && ec == std::errc::timed_out) deps_.deadHosts->timedOut(t.address);
      co_return rowOf(Failure::kConnectFailed).next;
    }
    if (deps_.deadHosts) deps_.deadHosts->connected(t.address);
    conn_ = conn;
    conn_->setTimeout(std::chrono::seconds(cfg_.timeoutRemote));
    created = clock.now();
    facts_ = ConnFacts();
    facts_.ip = address;
    facts_.relay = relay;
    facts_.levelRequested = std::string(policy::levelName(plan.decision.level));
    facts_.policySource = std::string(policy::sourceName(plan.decision.source));
    ended = co_await onConn(conn_, fresh(t, plan, port));
  }
  settle(ConnCache::Entry{conn_, facts_, cfg_.digest, address, created, {}, transactions + 1});
  // Every ending on a connection stops the walk: qmail never tries another MX once a TCP
  // connection is up, whatever happens later.
  co_return rowOf(report_.final().failure).next;
}

}  // namespace qtls::remoted
