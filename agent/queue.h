// Hands a message to qmail-queue the way qmail-smtpd does (spec 4.9, 5): fd 0 = the message,
// read to EOF first; fd 1 = the envelope; run from the qmail home. Asynchronous: the pipes are
// written and the child's exit awaited (through a pidfd) without blocking the event loop.
#pragma once

#include <sys/types.h>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qtls::agent {

struct QueueResult {
  bool started = false;     // pipes and fork worked
  bool crashed = false;     // killed by a signal
  bool writeError = false;  // the message or envelope could not be written whole
  int exitCode = -1;
  pid_t pid = 0;
};

// "F<sender>\0T<rcpt>\0...\0"
std::string envelopeBytes(std::string_view sender, const std::vector<std::string>& recipients);

// One qmail-queue run, started when DATA is accepted, fed the message while it arrives, and
// committed with the envelope only after a complete final dot (as qmail-smtpd does). Memory per
// session is one chunk, not one message. abort() (or destruction) closes the message without an
// envelope, and qmail-queue queues nothing.
class QueueJob {
 public:
  // nullptr when pipes or the process could not be made ("451 qqt failure"); a program that
  // cannot be run or a home that cannot be entered shows up as exit 120 / 61 at commit().
  // `env`: "NAME=value" entries for the child, replacing the daemon's own variables of those
  // names; the daemon's PROTO, TCP* and RELAYCLIENT never reach it otherwise.
  static std::unique_ptr<QueueJob> start(asio::any_io_executor ex, const std::string& program,
                                         const std::string& home,
                                         const std::vector<std::string>& env = {});
  ~QueueJob();
  // Appends to the message; false once qmail-queue stopped reading (nothing more is written).
  asio::awaitable<bool> write(std::string_view bytes);
  asio::awaitable<QueueResult> commit(std::string_view envelope);
  asio::awaitable<void> abort();

 private:
  explicit QueueJob(asio::any_io_executor ex);
  asio::awaitable<void> waitExit();

  asio::any_io_executor ex_;
  asio::posix::stream_descriptor msgOut_, envOut_;
  QueueResult result_;
  bool failed_ = false, reaped_ = false;
};

// The SMTP reply for a result (qmail's qmail_close mapping): "250 ok <time> qp <pid>" only for
// exit 0 with everything written; "554 ..." for permanent and "451 ..." for temporary failures.
std::string queueReply(const QueueResult& r, std::time_t now);

}  // namespace qtls::agent
