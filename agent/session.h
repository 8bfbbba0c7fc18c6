// One inbound SMTP session (spec 4): commands and replies of qmail-smtpd, STARTTLS with the
// RFC 3207 reset and pipelining-injection protection, the relay decision, DATA with qmail's
// byte rules, and the hand-off to qmail-queue. Runs as a coroutine on its own strand.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <string>
#include <utility>

#include "admin/session_events.h"
#include "metrics.h"
#include "smtpd_config.h"

namespace qtls::agent {

struct SessionLimits {
  size_t maxLine = 4096;         // command line bytes; longer lines get 500 and are discarded
  size_t maxRecipients = 1000;   // then 452
  size_t maxMessage = 64 << 20;  // hard cap when databytes is 0; then 552
};

struct SessionParams {
  SmtpdConfigConstSharedPtr config;
  std::string qmailQueue;  // program to run
  SessionLimits limits;
  bool implicitTls = false;
  std::string listenerCiphers;          // per-listener cipher override, "" = tlsserverciphers
  std::string listener;                 // label for the log
  AgentMetrics* metrics = nullptr;      // may be null
  admin::SessionHub* events = nullptr;  // may be null
};

asio::awaitable<void> runSession(asio::ip::tcp::socket socket, SessionParams params);

// Address parsing with qmail-smtpd's leniency: text inside <...> (or after ':' up to a space),
// quotes and backslashes removed, a source route "@a,@b:" dropped. `rest` receives what follows
// the address (ESMTP parameters). Returns false for addresses over 900 bytes or with CR, LF or
// NUL.
bool parseAddress(std::string_view arg, std::string& address, std::string& rest);

// The DATA byte machine: CRLF -> LF, leading '.' removed, ends at CRLF.CRLF; counts hops in the
// header and stored bytes. Bare LF is an error, as in qmail-smtpd.
class DataReader {
 public:
  explicit DataReader(size_t limit) : limit_(limit) {}
  enum class State { kMore, kDone, kBareLf };
  // Consumes bytes from `in`; returns how many were used (stops right after the final dot line).
  size_t feed(std::string_view in);
  State state() const { return state_; }
  // The decoded bytes produced so far, handed over and forgotten (streamed to qmail-queue).
  std::string take() { return std::exchange(message_, std::string()); }
  size_t pending() const { return message_.size(); }
  bool overflow() const { return overflow_; }
  int hops() const { return hops_; }

 private:
  void emit(char c);
  State state_ = State::kMore;
  int s_ = 0;  // 0 line start, 1 in line, 2 CR seen, 3 '.' at line start, 4 ".\r"
  size_t limit_;
  size_t bytes_ = 0;
  bool overflow_ = false;
  std::string message_;
  bool inHeader_ = true;
  size_t linePos_ = 0;
  char prefix_[9] = {};
  int hops_ = 0;
};

}  // namespace qtls::agent
