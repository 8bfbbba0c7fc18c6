// DATA (spec 4.7, 4.9): the message streamed to qmail-queue as it arrives, the envelope only
// after a complete final dot, with the environment qmail-smtpd under tcpserver would give.
#include <algorithm>
#include <ctime>

#include "queue.h"
#include "received.h"
#include "session_impl.h"

namespace qtls::agent {

std::vector<std::string> Session::queueEnvironment() const {
  // tcpserver's variables (no DNS lookups: no TCPREMOTEHOST or TCPREMOTEINFO, so qmail-smtpd
  // would have said "unknown"), TCPLOCALHOST as `tcpserver -l` sets it, and RELAYCLIENT (empty)
  // when this client may relay: by control/relayclients, as a tcprules entry would set it, or
  // by its certificate, as qmail-tls exports it.
  std::vector<std::string> env = {
      "PROTO=TCP",
      "TCPREMOTEIP=" + remoteIp_,
      "TCPREMOTEPORT=" + remotePort_,
      "TCPLOCALIP=" + localIp_,
      "TCPLOCALPORT=" + localPort_,
      "TCPLOCALHOST=" + cfg_.localName,
  };
  if (relayClient_ || cert_.allowed) env.push_back("RELAYCLIENT=");
  return env;
}

asio::awaitable<bool> Session::data() {
  if (!haveMail_) {
    reply("503 MAIL first (#5.5.1)");
    co_return true;
  }
  if (rcpts_.empty()) {
    reply("503 RCPT first (#5.5.1)");
    co_return true;
  }
  // qmail-queue starts now and receives the message as it arrives; the envelope follows only
  // after a complete final dot, so an interrupted or refused message is never queued.
  std::unique_ptr<QueueJob> job =
      QueueJob::start(stream_.executor(), p_.qmailQueue, cfg_.home, queueEnvironment());
  if (!job) {
    reply("451 qqt failure (#4.3.0)");
    co_return true;
  }
  reply("354 go ahead");
  bool feeding = co_await job->write(
      receivedLine("unknown", helo_, remoteIp_, cfg_.localName, protocol(), std::time(nullptr)));
  DataReader reader(messageLimit());
  inData_ = true;
  const std::string end = co_await receiveMessage(*job, reader, feeding);
  inData_ = false;
  deadline_ = Clock::time_point::max();
  if (!end.empty()) {
    co_await job->abort();
    co_await flush();
    logSession(end);
    co_return false;
  }
  const std::string result = co_await finishMessage(*job, reader);
  if (p_.metrics)
    p_.metrics->messages
        .with({result[0] == '2'   ? "accepted"
               : result[0] == '4' ? "temporary"
                                  : "permanent"})
        .add(1);
  resetTransaction();
  progress();
  reply(result);
  co_return true;
}

asio::awaitable<std::string> Session::receiveMessage(QueueJob& job, DataReader& reader,
                                                     bool& feeding) {
  // However slowly it comes, DATA must average dataMinRate after a grace period.
  const Clock::time_point dataStart = Clock::now();
  size_t received = 0;
  // Progress for eviction: the bytes since the last mark came at least at the rate floor.
  Clock::time_point mark = dataStart;
  size_t markBytes = 0;
  std::string& in = reader_.buffer();
  for (;;) {
    size_t used = reader.feed(in);
    in.erase(0, used);
    // Hop or size overflow: stop feeding (the message will be refused), keep reading to the
    // dot, as qmail-smtpd does, but not without end.
    if (reader.overflow() || reader.hops() >= 100) feeding = false;
    if (!feeding && received > 2 * messageLimit() + (1 << 20)) {
      reply("552 sorry, that message size exceeds my databytes limit (#5.3.4)");
      co_return "overflow";
    }
    if (reader.pending() >= 65536 || reader.state() != DataReader::State::kMore) {
      std::string chunk = reader.take();
      if (feeding) feeding = co_await job.write(chunk);
    }
    if (reader.state() == DataReader::State::kDone) co_return "";
    if (reader.state() == DataReader::State::kBareLf) {
      reply("451 See http://pobox.com/~djb/docs/smtplf.html.");
      co_return "bare-lf";
    }
    if (!co_await flush()) co_return "eof-in-data";
    char buf[65536];
    std::error_code ec;
    deadline_ = dataStart + p_.limits.dataGrace +
                std::chrono::seconds(received / std::max<size_t>(p_.limits.dataMinRate, 1));
    setWaiting(true);
    size_t n = co_await readSome(buf, sizeof buf, ec);
    setWaiting(false);
    if (std::string end = dataReadEnded(ec); !end.empty()) co_return end;
    received += n;
    in.append(buf, n);
    const auto now = Clock::now();
    const double due = static_cast<double>(p_.limits.dataMinRate) *
                       std::chrono::duration<double>(now - mark).count();
    if (static_cast<double>(received - markBytes) >= due) {
      progress();
      mark = now;
      markBytes = received;
    }
  }
}

std::string Session::dataReadEnded(const std::error_code& ec) {
  if (stream_.timedOut()) {
    reply("451 timeout (#4.4.2)");
    if (p_.metrics) p_.metrics->closedByLimit.with({"timeout"}).add(1);
    return "timeout-in-data";
  }
  if (closing_ && closeHow_ != Close::kWhenIdle && ec == asio::error::operation_aborted) {
    // The drain ran out, or this session was evicted for trickling its message below the
    // rate floor while the table was full: the message is not queued, the client retries.
    const bool evicted = closeHow_ == Close::kEvict;
    reply(closingReply());
    if (p_.metrics) p_.metrics->closedByLimit.with({evicted ? "evicted" : "shutdown"}).add(1);
    return evicted ? "evicted-in-data" : "shutdown-in-data";
  }
  if (ec) return "eof-in-data";  // client gone in the middle of DATA
  return "";
}

asio::awaitable<std::string> Session::finishMessage(QueueJob& job, const DataReader& reader) {
  if (reader.hops() >= 100) {
    co_await job.abort();
    co_return "554 too many hops, this message is looping (#5.4.6)";
  }
  if (reader.overflow()) {
    co_await job.abort();
    co_return "552 sorry, that message size exceeds my databytes limit (#5.3.4)";
  }
  QueueResult q = co_await job.commit(envelopeBytes(sender_, rcpts_));
  if (q.started && !q.crashed && q.exitCode == 0 && !q.writeError) ++accepted_;
  co_return queueReply(q, std::time(nullptr));
}

}  // namespace qtls::agent
