// The outbound SMTP dialogue (spec 2.6-2.10): greeting, EHLO/HELO, MAIL, RCPT, DATA and the
// body. The TLS steps are in session_tls.cc.
#include "session.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "log/log.h"
#include "smtp/address.h"
#include "smtp/body.h"
#include "util/text.h"

namespace qtls::remoted {

void Session::died(const SmtpConn::ReadResult* rr) {
  polite_ = false;
  if (control_.stopped()) {
    report_.finish('Z', stoppedText(control_.reason(), ip_, afterDot_, control_.limitSeconds));
    return;
  }
  if (rr != nullptr && !rr->ec && !rr->protocolError.empty()) {
    outOfStep(rr->protocolError);
    return;
  }
  report_.finish('Z', diedText(ip_, afterDot_));
}

void Session::outOfStep(std::string_view what) {
  polite_ = false;
  report_.finish('Z', text::cat("Connected to ", ip_, " but the reply was malformed (", what, "). ",
                                afterDot_ ? "Possible duplicate! " : "", "(#4.4.2)\n"));
}

void Session::failed(std::string_view what) {
  polite_ = false;
  if (conn_) conn_->close();
  report_.finish('Z', internalErrorText(what, afterDot_));
}

asio::awaitable<bool> Session::reply(SmtpConn::ReadResult& rr, bool extraAllowed) {
  rr = co_await conn_->readReply();
  if (rr.ok() && !extraAllowed && conn_->buffered() > 0)
    rr.protocolError = "more than one reply at once";  // e.g. an injected extra 250 to RCPT
  if (!rr.ok()) {
    died(&rr);
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> Session::command(std::string_view line, SmtpConn::ReadResult& rr,
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

asio::awaitable<bool> Session::greeting(bool implicit) {
  SmtpConn::ReadResult rr;
  if (!co_await reply(rr)) co_return false;
  if (rr.reply.code != 220) {
    quit('Z', implicit ? "TLS Connected to " : "Connected to ", " but greeting failed", &rr.reply);
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> Session::talk(const Target& t, unsigned port) {
  SmtpConn::ReadResult rr;
  const bool implicit = port == 465;
  int code = 0;
  bool tlsDone = false;
  const TlsPlan plan = makePlan(cfg_, req_.host, t);
  levelRequested_ = std::string(policy::levelName(plan.decision.level));
  policySource_ = std::string(policy::sourceName(plan.decision.source));
  seen_.target = t;
  seen_.implicit = implicit;
  if (implicit) {
    seen_.reached = true;
    if (!co_await startTls(t, plan, true, tlsDone)) co_return false;
    if (!co_await greeting(true)) co_return false;
  } else {
    if (!co_await greeting(false)) co_return false;
    if (!co_await command(text::cat("EHLO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    code = rr.reply.code;
    std::vector<std::string> keywords;
    if (code == 250) keywords = smtp::ehloKeywords(rr.reply);
    seen_.reached = true;
    seen_.starttlsOffered = smtp::hasKeyword(keywords, "STARTTLS");
    // No STARTTLS keyword (or EHLO refused): a required level fails, the others go on in
    // plain text.
    if (!smtp::hasKeyword(keywords, "STARTTLS")) {
      if (policy::tlsRequired(plan.decision.level)) {
        tlsFail("no_starttls", text::cat("No TLS achieved while ", plan.sentence), "", false);
        co_return false;
      }
    } else if (!co_await startTls(t, plan, false, tlsDone)) {
      co_return false;
    }
  }
  if (implicit || tlsDone) {
    if (!co_await command(text::cat("EHLO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    code = rr.reply.code;
  }
  if (code != 250) {
    if (!co_await command(text::cat("HELO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    if (rr.reply.code != 250) {
      quit('Z', "Connected to ", " but my name was rejected", &rr.reply);
      co_return false;
    }
  }

  if (!co_await command(text::cat("MAIL FROM:<", smtp::quoteAddress(req_.sender), ">\r\n"), rr))
    co_return false;
  if (rr.reply.code >= 500) {
    quit('D', "Connected to ", " but sender was rejected", &rr.reply);
    co_return false;
  }
  if (rr.reply.code >= 400) {
    quit('Z', "Connected to ", " but sender was rejected", &rr.reply);
    co_return false;
  }
  bool anyAccepted = false;
  for (size_t i = 0; i < req_.recipients.size(); ++i) {
    if (!co_await command(text::cat("RCPT TO:<", smtp::quoteAddress(req_.recipients[i]), ">\r\n"),
                          rr))
      co_return false;
    rcptCodes_[i] = rr.reply.code;
    if (rr.reply.code >= 400) {
      report_.recipient(rr.reply.code >= 500 ? 'h' : 's',
                        text::cat(ip_, " does not like recipient.\n", remoteSaid(rr.reply)));
    } else {
      report_.recipient('r', "");
      anyAccepted = true;
    }
  }
  if (!anyAccepted) {
    quit('D', "Giving up on ", "", nullptr);
    co_return false;
  }
  // The last moment at which nothing can be queued yet: nobody waits for this delivery.
  if (!control_.stillWanted()) {
    died();
    co_return false;
  }
  if (!co_await command("DATA\r\n", rr)) co_return false;
  if (rr.reply.code >= 400) {
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "", " failed on DATA command", &rr.reply);
    co_return false;
  }
  // qmail took any code below 400 as "go ahead". Only a 3xx (354) is one: a 2xx here is the
  // answer to an earlier command, so the dialogue is out of step and the body must not go.
  if (rr.reply.code < 300) {
    outOfStep(text::cat("DATA answered with ", rr.reply.code, ", not 354"));
    co_return false;
  }
  if (!co_await sendBody()) co_return false;
  if (!co_await reply(rr)) co_return false;
  dotAnswered_ = true;
  // K only for a 2xx to the final dot: qmail took any code below 400, which would turn a 1xx or
  // a stray 354 into a false delivery (docs/compatibility.md).
  if (rr.reply.code < 200 || rr.reply.code >= 300) {
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "", " failed after I sent the message", &rr.reply);
    co_return false;
  }
  quit('K', "", " accepted message", &rr.reply);
  co_return true;
}

// The body: read from the queued file, encode, and send; the final chunk carries ".\r\n".
asio::awaitable<bool> Session::sendBody() {
  smtp::BodyEncoder enc;
  off_t offset = ::lseek(req_.messageFd, 0, SEEK_CUR);
  if (offset < 0) offset = 0;
  std::string in(65536, '\0'), outbuf;
  for (;;) {
    ssize_t n = ::pread(req_.messageFd, in.data(), in.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      polite_ = false;
      report_.finish('Z', kReadMessage);
      co_return false;
    }
    outbuf.clear();
    if (n == 0) {
      if (!enc.finish(outbuf)) {
        polite_ = false;  // mid-DATA: the connection is just closed, no final dot
        report_.finish('D', kPartialLine);
        co_return false;
      }
      // Never send the dot for a delivery nobody waits for.
      if (!control_.stillWanted()) {
        died();
        co_return false;
      }
      afterDot_ = true;
    } else {
      offset += n;
      enc.feed(std::string_view(in.data(), static_cast<size_t>(n)), outbuf);
    }
    if (auto ec = co_await conn_->write(outbuf)) {
      died();
      co_return false;
    }
    if (n == 0) co_return true;
  }
}

asio::awaitable<void> Session::run(const TargetList& targets) {
  auto ex = co_await asio::this_coro::executor;
  rcptCodes_.assign(req_.recipients.size(), 0);
  for (const auto& t : targets.targets) {
    if (control_.stopped()) break;
    auto conn = std::make_shared<SmtpConn>(ex);
    control_.attach(conn);
    asio::ip::tcp::endpoint ep(t.address, static_cast<unsigned short>(targets.port));
    std::error_code ec = co_await conn->connect(ep, std::chrono::seconds(cfg_.timeoutConnect));
    if (ec) {
      log::info(text::cat("remote connect relay=", t.fqdn.empty() ? "-" : t.fqdn, "[",
                          t.address.to_string(), "]:", targets.port,
                          " error=", log::value(ec.message())));
      continue;
    }
    conn_ = conn;
    conn_->setTimeout(std::chrono::seconds(cfg_.timeoutRemote));
    ip_ = t.address.to_string();
    relay_ = text::cat(t.fqdn.empty() ? "-" : t.fqdn, "[", ip_, "]:", targets.port);
    // qmail never tries another MX once a TCP connection is up, whatever happens later.
    co_await talk(t, targets.port);
    if (polite_ && !control_.stopped())
      out_.openConn = conn_;
    else
      conn_->close();
    co_return;
  }
  if (control_.stopped())
    report_.finish('Z', stoppedText(control_.reason(), "", false, control_.limitSeconds));
  else
    report_.finish('Z', kNoConn);
}

}  // namespace qtls::remoted
