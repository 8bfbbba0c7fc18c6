// The inbound session's state and steps, shared by session.cc (I/O, the command loop and the
// commands) and session_data.cc (DATA and the hand-off to qmail-queue). Private to the agent.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "daemon/watchdog.h"
#include "net/smtp_stream.h"
#include "relay.h"
#include "session.h"
#include "session_registry.h"
#include "smtp_input.h"

namespace qtls::agent {

class QueueJob;

class Session : public SessionControl, public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;
  Session(asio::ip::tcp::socket sock, SessionParams p);
  ~Session() override;

  asio::awaitable<void> run();
  bool usedTls() const { return stream_.tls(); }
  net::SmtpStream& stream() { return stream_; }  // for its deadline
  void close(Close how) override;
  void registered(uint64_t id) { registryId_ = id; }

 private:
  enum class Line { kOk, kEof, kTimeout, kTooLong, kError, kClosing };

  asio::awaitable<size_t> readSome(char* buf, size_t n, std::error_code& ec);
  asio::awaitable<Line> readLine(std::string& line);
  asio::awaitable<bool> flush();
  asio::awaitable<bool> handshake();
  void reply(std::string_view line) {
    out_.append(line);
    out_.append("\r\n");
  }
  // Each read waits at most timeoutsmtpd, and never past deadline_ (a command line's or DATA's).
  void arm();
  void armFor(Clock::duration t);
  void disarm();
  // Waiting for the client (evictable after --evict-idle without progress), or busy.
  void setWaiting(bool waiting);
  // The transaction moved: MAIL or RCPT accepted, a message done, DATA above the rate floor.
  void progress();
  void resetTransaction() {
    haveMail_ = false;
    badFrom_ = false;
    sender_.clear();
    rcpts_.clear();
  }
  // The message limit in force: control/databytes, else --max-message.
  size_t messageLimit() const;
  std::string closingReply() const;

  void identifyPeer();  // addresses, TCP_NODELAY, control/relayclients
  // After reading a command line: true when the session ends there (EOF, timeout, closing),
  // its reply sent and its line logged.
  asio::awaitable<bool> endsOn(Line st);
  // One command; false: close the session.
  asio::awaitable<bool> command(const std::string& verb, std::string_view arg);
  void ehlo(std::string_view arg);
  void mail(std::string_view arg);
  void rcpt(std::string_view arg);
  asio::awaitable<bool> data();  // false: close the session
  // The message to the final dot, fed to qmail-queue while `feeding`; "" at the dot, else why
  // the session ends (the reply, if any, is sent).
  asio::awaitable<std::string> receiveMessage(QueueJob& job, DataReader& reader, bool& feeding);
  // After a read in DATA: why the session ends (timeout, drain, eviction, EOF), or "".
  std::string dataReadEnded(const std::error_code& ec);
  // The reply to the final dot: refused (hops, size) or qmail-queue's verdict.
  asio::awaitable<std::string> finishMessage(QueueJob& job, const DataReader& reader);
  asio::awaitable<bool> starttls();  // after the checks: 220, handshake, state reset
  // What tcpserver and qmail-smtpd would have put in qmail-queue's environment.
  std::vector<std::string> queueEnvironment() const;
  std::string protocol() const;
  void logSession(std::string_view end);

  net::SmtpStream stream_;  // the client's connection, plain or TLS, with its deadline
  SessionParams p_;
  const SmtpdConfig& cfg_;
  LineReader reader_;
  std::string out_;
  std::string remoteIp_, remotePort_, localIp_, localPort_;
  Clock::time_point deadline_ = Clock::time_point::max();
  uint64_t registryId_ = 0;
  bool closing_ = false;  // stopping or evicted: 421 at the next command
  Close closeHow_ = Close::kWhenIdle;
  bool inData_ = false;
  bool reading_ = false;  // waiting for the client (a read or a handshake): close() may cancel
  size_t commandsWithoutProgress_ = 0;
  bool writeStalled_ = false;  // a reply timed out unread: nothing more is written  // bounded by
                               // --max-junk-commands

  std::string helo_;
  bool haveMail_ = false, badFrom_ = false;
  std::string sender_;
  std::vector<std::string> rcpts_;
  bool relayClient_ = false, certTried_ = false;
  CertDecision cert_;
  int accepted_ = 0, refusedRelay_ = 0;
  const Clock::time_point started_ = Clock::now();
  std::string relayUsed_ = "none";
  size_t injected_ = 0;
};

}  // namespace qtls::agent
