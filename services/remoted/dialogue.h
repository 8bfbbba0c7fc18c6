// One delivery's SMTP dialogue (spec 2.6-2.10) with qmail-tls semantics (spec 3): for each
// target in order, a connection (an idle one from the cache, else a new one: connect,
// greeting, EHLO, STARTTLS, verification), then one transaction on it (MAIL to the final
// dot, pipelined when the server offers it), and the report. What the dialogue saw stays
// readable afterwards for the log line, metrics and the admin event stream.
//
// The connection's work runs on the connection's own strand (smtp_conn.h: onConn), so that a
// connection can serve one delivery after another; the delivery awaits it.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "candidate.h"
#include "conn_cache.h"
#include "connection.h"
#include "delivery.h"
#include "delivery_control.h"
#include "outcome.h"
#include "plan.h"
#include "smtp_conn.h"
#include "targets.h"

namespace qtls::remoted {

class Dialogue {
 public:
  Dialogue(const DeliveryDeps& deps, const DeliveryRequest& req, DeliveryControl& control,
           DeliveryResult& out)
      : deps_(deps),
        cfg_(*deps.config),
        req_(req),
        control_(control),
        out_(out),
        report_(out.report),
        metrics_(deps.metrics) {}

  asio::awaitable<void> run(const TargetList& targets);
  // After an exception escaped run(): the report, and the connection dropped.
  void failed(std::string_view what);

  // How far the dialogue on the current connection got; entered in this order.
  enum class Stage {
    kConnecting,   // no connection yet
    kOpening,      // greeting, EHLO or HELO, STARTTLS and the peer check
    kTransaction,  // MAIL, the RCPTs, DATA
    kBody,         // the message going, the final dot not yet
    kDotSent,      // the final dot may have reached the server
    kDotAnswered,  // and the server's reply to it was read
  };
  // Where the connection came from.
  enum class Origin { kNew, kCache };

  // What the dialogue saw, for the log line and the admin event stream.
  ConnFacts facts_;
  std::vector<int> rcptCodes_;  // reply code to each RCPT, in order (0: not reached)
  bool reused() const { return origin_ == Origin::kCache; }
  // The dot may have been delivered without the server's word: qmail may send it again.
  bool possibleDuplicate() const { return stage_ == Stage::kDotSent; }

 private:
  // How a try on one connection ended.
  enum class Ended {
    kReported,    // the report is final; settle() says what becomes of the connection
    kDeadReused,  // a reused connection was dead before MAIL was accepted: nothing reported
  };
  asio::awaitable<Next> tryAddress(const Target& t, unsigned port);
  asio::awaitable<Ended> fresh(const Target& t, const TlsPlan& plan, unsigned port);
  asio::awaitable<Ended> reuse();
  asio::awaitable<bool> establish(const Target& t, const TlsPlan& plan, unsigned port);
  asio::awaitable<Ended> transaction();
  std::string commandLine(size_t i) const;  // MAIL, RCPT i, or DATA
  asio::awaitable<Ended> afterRecipients(bool anyAccepted, SmtpConn::ReadResult& dataReply);
  bool recipientReply(size_t i, const smtp::Reply& r);
  asio::awaitable<bool> greeting(bool implicit);
  asio::awaitable<bool> sendBody();
  asio::awaitable<bool> startTls(const Target& t, const TlsPlan& plan, bool implicit,
                                 bool& tlsDone);
  // Sends one command and reads its reply. The dialogue is lock-step: a reply that arrives
  // before its command was sent, or bytes after a reply, put it out of step, which is a
  // protocol error; only after the 220 to STARTTLS are extra bytes allowed (then discarded).
  asio::awaitable<bool> command(std::string_view line, SmtpConn::ReadResult& rr,
                                bool extraAllowed = false);
  asio::awaitable<bool> reply(SmtpConn::ReadResult& rr, bool extraAllowed = false);
  // A reused connection found dead before MAIL was accepted: true when the delivery should
  // go on a new connection rather than report (not after a stop).
  bool deadReused(const SmtpConn::ReadResult* rr);
  bool verifyPeer(const TlsPlan& plan);
  void died(const SmtpConn::ReadResult* rr = nullptr);
  void outOfStep(std::string_view what);
  // The failure table's context on this connection, with the reply when there is one.
  EndingContext context(const smtp::Reply* r = nullptr) const {
    EndingContext c;
    c.ip = facts_.ip;
    if (r) {
      c.code = r->code;
      c.said = r->text;
    }
    c.afterDot = stage_ >= Stage::kDotSent;
    c.serverClosing = closing_;
    return c;
  }
  // How this try ended, as the failure table says: its record into the report, and with it
  // what becomes of the connection (settle()).
  void end(Failure f, const EndingContext& c) { report_.add(judge(f, c)); }
  void settle(ConnCache::Entry entry);

  const DeliveryDeps& deps_;
  const RemoteConfig& cfg_;
  const DeliveryRequest& req_;
  DeliveryControl& control_;
  DeliveryResult& out_;
  Report& report_;
  RemoteMetrics* metrics_;
  std::shared_ptr<SmtpConn> conn_;
  std::string key_;  // connectionKey() of conn_
  Stage stage_ = Stage::kConnecting;
  Origin origin_ = Origin::kNew;
  bool closing_ = false;  // the server said 421 during the transaction: not to be reused
};

}  // namespace qtls::remoted
