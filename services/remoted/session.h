// One delivery's SMTP dialogue (spec 2.6-2.10) with qmail-tls semantics (spec 3): connect to
// the targets in order, talk to the first that answers, and write the report. What the
// session saw (relay, levels, TLS facts, per-recipient replies) stays readable afterwards
// for the log line, metrics and the session stream.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "delivery.h"
#include "candidate.h"
#include "delivery_control.h"
#include "outcome.h"
#include "plan.h"
#include "smtp_conn.h"
#include "targets.h"

namespace qtls::remoted {

class Session {
 public:
  Session(const DeliveryDeps& deps, const DeliveryRequest& req, DeliveryControl& control,
          DeliveryResult& out)
      : cfg_(*deps.config),
        req_(req),
        control_(control),
        out_(out),
        report_(out.report),
        metrics_(deps.metrics) {}

  asio::awaitable<void> run(const TargetList& targets);
  // After an exception escaped run(): the report, and the connection dropped.
  void failed(std::string_view what);

  // What the session saw, for the log line and the session stream.
  std::string relay_, levelRequested_ = "-", levelAchieved_ = "none", tlsVersion_ = "-",
                      cipher_ = "-", verify_ = "-", policySource_ = "-", failure_ = "none";
  bool resumed_ = false;
  bool afterDot_ = false;       // the final dot may have reached the server
  bool dotAnswered_ = false;    // and the server's reply to it was read
  std::vector<int> rcptCodes_;  // reply code to each RCPT, in order (0: not reached)
  Observed seen_;               // of the server talked to, for a report-only candidate

 private:
  asio::awaitable<bool> talk(const Target& t, unsigned port);
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
  bool verifyPeer(const TlsPlan& plan);
  void died(const SmtpConn::ReadResult* rr = nullptr);
  void outOfStep(std::string_view what);
  void quit(char kind, std::string_view prepend, std::string_view append, const smtp::Reply* r) {
    report_.finish(kind, connectedText(prepend, ip_, append, r ? remoteSaid(*r) : std::string()));
  }
  // `reason`: a word from a closed set, for metrics and the session stream.
  void tlsFail(std::string_view reason, std::string_view what, std::string_view err, bool connected,
               const std::string& said = "") {
    failure_ = std::string(reason);
    report_.finish('Z', tlsText(what, err, connected, ip_, said));
  }

  const RemoteConfig& cfg_;
  const DeliveryRequest& req_;
  DeliveryControl& control_;
  DeliveryResult& out_;
  Report& report_;
  RemoteMetrics* metrics_;
  std::shared_ptr<SmtpConn> conn_;
  std::string ip_;
  bool polite_ = true;  // connection still in a state where QUIT makes sense
};

}  // namespace qtls::remoted
