// One transaction on an established connection (spec 2.8-2.10): MAIL, RCPT for each
// recipient, DATA, the body and the final dot. The commands before the body go in batches:
// all in one write when the server offers PIPELINING (RFC 2920), one at a time otherwise, so
// lock-step is a pipeline whose batch holds one command; the replies are matched in order and
// judged by the same code either way, so the report is the same byte for byte.
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "dialogue.h"
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
bool Dialogue::recipientReply(size_t i, const smtp::Reply& r) {
  rcptCodes_[i] = r.code;
  if (r.code == 421) closing_ = true;  // the server is closing the channel
  report_.add(judge(r.code >= 400 ? Failure::kRcptRefused : Failure::kRcptAccepted, context(&r)));
  return r.code < 400;
}

std::string Dialogue::commandLine(size_t i) const {
  if (i == 0) return mailLine(req_);
  if (i <= req_.recipients.size()) return rcptLine(req_.recipients[i - 1]);
  return "DATA\r\n";
}

asio::awaitable<Dialogue::Ended> Dialogue::transaction() {
  const size_t n = req_.recipients.size();
  const size_t total = n + 2;  // MAIL, the RCPTs, DATA
  const size_t batch = facts_.pipelining ? total : 1;
  rcptCodes_.assign(n, 0);
  stage_ = Stage::kTransaction;
  bool anyAccepted = false;
  SmtpConn::ReadResult rr;
  // `next` is the command whose reply comes next; [next, sent) are on their way.
  for (size_t next = 0, sent = 0; next < total; ++next) {
    // On a reused connection, one found dead before MAIL was answered (it talked while idle, an
    // I/O error, a malformed reply, 421) is not reported: the delivery goes on a new one.
    const bool first = next == 0;
    if (next == sent) {
      const size_t upTo = std::min(total, sent + batch);
      if (upTo == total) {  // DATA goes in this batch
        // Lock-step: no recipient accepted, so no DATA.
        if (next > 0 && !anyAccepted) {
          end(Failure::kNoRecipients, context());
          co_return Ended::kReported;
        }
        // The last moment at which nothing can be queued yet: the body goes only after 354,
        // and the final dot only after stillWanted() again.
        if (!control_.stillWanted()) {
          died();
          co_return Ended::kReported;
        }
      }
      // A reply that came before its command answers nothing we said: every later reply
      // would be taken for the wrong command.
      if (conn_->unread() > 0) {
        if (first && deadReused(nullptr)) co_return Ended::kDeadReused;
        outOfStep("a reply before the command was sent");
        co_return Ended::kReported;
      }
      std::string lines;
      for (size_t i = sent; i < upTo; ++i) lines += commandLine(i);
      if (auto ec = co_await conn_->write(lines)) {
        if (first && deadReused(nullptr)) co_return Ended::kDeadReused;
        died();
        co_return Ended::kReported;
      }
      sent = upTo;
    }
    // Replies still owed after this one may already be buffered; past the last, none may be
    // (e.g. an injected extra 250 to RCPT).
    const bool owed = sent > next + 1;
    rr = co_await conn_->readReply();
    if (rr.ok() && !owed && conn_->buffered() > 0) rr.protocolError = "more than one reply at once";
    if (first && deadReused(&rr)) co_return Ended::kDeadReused;
    if (!rr.ok()) {
      died(&rr);
      co_return Ended::kReported;
    }
    if (first) {
      if (rr.reply.code >= 400) {
        // Pipelined, the replies to the RCPTs and DATA are still on their way: not a
        // connection to QUIT on.
        EndingContext c = context(&rr.reply);
        c.owed = owed;
        end(Failure::kMailRefused, c);
        co_return Ended::kReported;
      }
    } else if (next <= n) {
      if (recipientReply(next - 1, rr.reply)) anyAccepted = true;
    } else {
      co_return co_await afterRecipients(anyAccepted, rr);
    }
  }
  co_return Ended::kReported;  // not reached: DATA's reply returns above
}

// From DATA's reply to the final one.
asio::awaitable<Dialogue::Ended> Dialogue::afterRecipients(bool anyAccepted,
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
  stage_ = Stage::kDotAnswered;
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
asio::awaitable<bool> Dialogue::sendBody() {
  stage_ = Stage::kBody;
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
      stage_ = Stage::kDotSent;
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
