// One transaction on an established connection (spec 2.8-2.10): MAIL, RCPT for each
// recipient, DATA, the body and the final dot; lock-step, or pipelined (RFC 2920) when the
// server offers PIPELINING: MAIL, every RCPT and DATA in one write, the replies matched in
// order. The report is the same byte for byte either way.
#include <unistd.h>

#include <cerrno>

#include "session.h"
#include "smtp/address.h"
#include "smtp/body.h"
#include "util/text.h"

namespace qtls::remoted {

namespace {
std::string mailLine(const DeliveryRequest& req) {
  return text::cat("MAIL FROM:<", smtp::quoteAddress(req.sender), ">\r\n");
}
std::string rcptLine(const std::string& rcpt) {
  return text::cat("RCPT TO:<", smtp::quoteAddress(rcpt), ">\r\n");
}
}  // namespace

// The reply to the i-th RCPT, lock-step or pipelined alike: its record in the report (r, or h/s
// with qmail-remote's text). True when the recipient was accepted.
bool Session::recipientReply(size_t i, const smtp::Reply& r) {
  rcptCodes_[i] = r.code;
  if (r.code == 421) closing_ = true;  // the server is closing the channel
  if (r.code >= 400) {
    report_.recipient(r.code >= 500 ? 'h' : 's',
                      text::cat(facts_.ip, " does not like recipient.\n", remoteSaid(r)));
    return false;
  }
  report_.recipient('r', "");
  return true;
}

asio::awaitable<Session::Ended> Session::transaction() {
  rcptCodes_.assign(req_.recipients.size(), 0);
  if (facts_.pipelining) co_return co_await pipelined();
  SmtpConn::ReadResult rr;
  // MAIL. On a reused connection, a connection found dead here (it talked while idle, an I/O
  // error, a malformed reply, 421) is not reported: the delivery goes on a new one.
  if (conn_->unread() > 0) {
    if (deadReused(nullptr)) co_return Ended::kDeadReused;
    outOfStep("a reply before the command was sent");
    co_return Ended::kReported;
  }
  if (auto ec = co_await conn_->write(mailLine(req_))) {
    if (deadReused(nullptr)) co_return Ended::kDeadReused;
    died();
    co_return Ended::kReported;
  }
  rr = co_await conn_->readReply();
  if (rr.ok() && conn_->buffered() > 0) rr.protocolError = "more than one reply at once";
  if (deadReused(&rr)) co_return Ended::kDeadReused;
  if (!rr.ok()) {
    died(&rr);
    co_return Ended::kReported;
  }
  if (rr.reply.code >= 500) {
    quit('D', "Connected to ", " but sender was rejected", &rr.reply);
    co_return Ended::kReported;
  }
  if (rr.reply.code >= 400) {
    quit('Z', "Connected to ", " but sender was rejected", &rr.reply);
    co_return Ended::kReported;
  }
  bool anyAccepted = false;
  for (size_t i = 0; i < req_.recipients.size(); ++i) {
    if (!co_await command(rcptLine(req_.recipients[i]), rr)) co_return Ended::kReported;
    if (recipientReply(i, rr.reply)) anyAccepted = true;
  }
  if (!anyAccepted) {
    quit('D', "Giving up on ", "", nullptr);
    co_return Ended::kReported;
  }
  // The last moment at which nothing can be queued yet: nobody waits for this delivery.
  if (!control_.stillWanted()) {
    died();
    co_return Ended::kReported;
  }
  if (!co_await command("DATA\r\n", rr)) co_return Ended::kReported;
  co_return co_await afterRecipients(true, rr);
}

asio::awaitable<Session::Ended> Session::pipelined() {
  std::string batch = mailLine(req_);
  for (const std::string& r : req_.recipients) batch += rcptLine(r);
  batch += "DATA\r\n";
  // DATA leaves with the rest: this is the last moment nothing can be queued yet (the body
  // goes only after 354, and the final dot only after stillWanted() again).
  if (!control_.stillWanted()) {
    died();
    co_return Ended::kReported;
  }
  if (conn_->unread() > 0) {
    if (deadReused(nullptr)) co_return Ended::kDeadReused;
    outOfStep("a reply before the command was sent");
    co_return Ended::kReported;
  }
  if (auto ec = co_await conn_->write(batch)) {
    if (deadReused(nullptr)) co_return Ended::kDeadReused;
    died();
    co_return Ended::kReported;
  }
  SmtpConn::ReadResult rr;
  rr = co_await conn_->readReply();  // MAIL's; the others may be in the buffer already
  if (deadReused(&rr)) co_return Ended::kDeadReused;
  if (!rr.ok()) {
    died(&rr);
    co_return Ended::kReported;
  }
  if (rr.reply.code >= 400) {
    // The replies to the RCPTs and DATA are still on their way: not a connection to QUIT on.
    polite_ = false;
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "Connected to ", " but sender was rejected", &rr.reply);
    co_return Ended::kReported;
  }
  bool anyAccepted = false;
  for (size_t i = 0; i < req_.recipients.size(); ++i) {
    if (!co_await reply(rr, true)) co_return Ended::kReported;
    if (recipientReply(i, rr.reply)) anyAccepted = true;
  }
  // DATA's reply is the last one owed: nothing may follow it.
  if (!co_await reply(rr)) co_return Ended::kReported;
  co_return co_await afterRecipients(anyAccepted, rr);
}

// From DATA's reply to the final one.
asio::awaitable<Session::Ended> Session::afterRecipients(bool anyAccepted,
                                                         SmtpConn::ReadResult& rr) {
  if (!anyAccepted) {
    // Pipelined: a server that answers DATA with 354 anyway now waits for a body; the
    // connection is closed instead of sending one.
    if (rr.reply.code == 354) polite_ = false;
    quit('D', "Giving up on ", "", nullptr);
    co_return Ended::kReported;
  }
  if (rr.reply.code >= 400) {
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "", " failed on DATA command", &rr.reply);
    co_return Ended::kReported;
  }
  // qmail took any code below 400 as "go ahead". Only a 3xx (354) is one: a 2xx here is the
  // answer to an earlier command, so the dialogue is out of step and the body must not go.
  if (rr.reply.code < 300) {
    outOfStep(text::cat("DATA answered with ", rr.reply.code, ", not 354"));
    co_return Ended::kReported;
  }
  if (!co_await sendBody()) co_return Ended::kReported;
  if (!co_await reply(rr)) co_return Ended::kReported;
  dotAnswered_ = true;
  // K only for a 2xx to the final dot: qmail took any code below 400, which would turn a 1xx or
  // a stray 354 into a false delivery (docs/compatibility.md).
  if (rr.reply.code < 200 || rr.reply.code >= 300) {
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "", " failed after I sent the message", &rr.reply);
    co_return Ended::kReported;
  }
  quit('K', "", " accepted message", &rr.reply);
  co_return closing_ ? Ended::kReported : Ended::kClean;
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
      if (control_.dotGoing) control_.dotGoing(facts_.ip);
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

}  // namespace qtls::remoted
