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
  report_.add(judge(r.code >= 400 ? Failure::kRcptRefused : Failure::kRcptAccepted, context(&r)));
  return r.code < 400;
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
  if (rr.reply.code >= 400) {
    end(Failure::kMailRefused, context(&rr.reply));
    co_return Ended::kReported;
  }
  bool anyAccepted = false;
  for (size_t i = 0; i < req_.recipients.size(); ++i) {
    if (!co_await command(rcptLine(req_.recipients[i]), rr)) co_return Ended::kReported;
    if (recipientReply(i, rr.reply)) anyAccepted = true;
  }
  if (!anyAccepted) {
    end(Failure::kNoRecipients, context());
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
    EndingContext c = context(&rr.reply);
    c.owed = true;
    end(Failure::kMailRefused, c);
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
    EndingContext c = context();
    c.owed = rr.reply.code == 354;
    end(Failure::kNoRecipients, c);
    co_return Ended::kReported;
  }
  if (rr.reply.code >= 400) {
    end(Failure::kDataRefused, context(&rr.reply));
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
    end(Failure::kDotRefused, context(&rr.reply));
    co_return Ended::kReported;
  }
  end(Failure::kDotAccepted, context(&rr.reply));
  co_return Ended::kReported;
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
      end(Failure::kReadMessage, context());
      co_return false;
    }
    outbuf.clear();
    if (n == 0) {
      if (!enc.finish(outbuf)) {
        end(Failure::kPartialLine, context());  // mid-DATA: closed, no final dot
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
