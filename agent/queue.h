// Hands a message to qmail-queue the way qmail-smtpd does (spec 4.9, 5): fd 0 = the message,
// read to EOF first; fd 1 = the envelope; run from the qmail home. Asynchronous: the pipes are
// written and the child's exit awaited (through a pidfd) without blocking the event loop.
#pragma once

#include <sys/types.h>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <ctime>
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

// The message is `header` (the Received line) followed by `body`, written without joining them.
asio::awaitable<QueueResult> runQmailQueue(std::string program, std::string home,
                                           std::string_view header, std::string_view body,
                                           std::string_view envelope);

// The SMTP reply for a result (qmail's qmail_close mapping): "250 ok <time> qp <pid>" only for
// exit 0 with everything written; "554 ..." for permanent and "451 ..." for temporary failures.
std::string queueReply(const QueueResult& r, std::time_t now);

}  // namespace qtls::agent
