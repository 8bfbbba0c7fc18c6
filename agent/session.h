// One inbound SMTP session (spec 4): commands and replies of qmail-smtpd, STARTTLS with the
// RFC 3207 reset and pipelining-injection protection, the relay decision, DATA with qmail's
// byte rules, and the hand-off to qmail-queue. Runs as a coroutine on its own strand.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

#include "admin/event_hub.h"
#include "metrics.h"
#include "smtp_input.h"
#include "smtpd_config.h"

namespace qtls::agent {

struct SessionLimits {
  size_t maxLine = 4096;         // command line bytes; longer lines get 500 and are discarded
  size_t maxRecipients = 1000;   // then 452
  size_t maxMessage = 64 << 20;  // hard cap when databytes is 0; then 552
  // Besides timeoutsmtpd for each read (qmail-smtpd's rule), a command line must be complete
  // this long after its first byte, and DATA may take `dataGrace` plus one second per
  // `dataMinRate` bytes received: a client sending a byte a second cannot hold a session.
  std::chrono::seconds commandTimeout{120};
  std::chrono::seconds dataGrace{60};
  size_t dataMinRate = 1024;  // bytes per second; DATA slower than this is no progress
  // Commands in a row (NOOP, RSET, HELP, refused RCPTs, ...) with no progress; then 421.
  size_t maxJunkCommands = 100;
};

class SessionRegistry;

struct SessionParams {
  SmtpdConfigConstSharedPtr config;
  SmtpdConfigConstSharedPtr candidate;  // a fleet candidate evaluated report-only, or null
  std::string qmailQueue;               // program to run
  SessionLimits limits;
  bool implicitTls = false;
  std::string listenerCiphers;          // per-listener cipher override, "" = tlsserverciphers
  std::string listener;                 // label for the log
  AgentMetrics* metrics = nullptr;      // may be null
  admin::EventHub* events = nullptr;    // may be null
  SessionRegistry* registry = nullptr;  // may be null; sessions register to be stopped
};

// What the listeners may ask of a running session. Called on the session's strand.
class SessionControl {
 public:
  virtual ~SessionControl() = default;
  enum class Close {
    kWhenIdle,  // stopping: close with 421 now if no message is in progress, else after it
    kNow,       // the stop drain ran out: close with 421 even in the middle of DATA
    kEvict,     // the connection table is full and this is the idlest idle session
  };
  virtual void close(Close how) = 0;
};

asio::awaitable<void> runSession(asio::ip::tcp::socket socket, SessionParams params);

}  // namespace qtls::agent
