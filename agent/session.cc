// The inbound SMTP session.
#include "session.h"

#include <openssl/err.h>

#include <asio/redirect_error.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>

#include "daemon/watchdog.h"
#include "log/log.h"
#include "queue.h"
#include "received.h"
#include "relay.h"
#include "tls/errors.h"
#include "util/text.h"

namespace qtls::agent {

using asio::redirect_error;
using asio::use_awaitable;

bool parseAddress(std::string_view arg, std::string& address, std::string& rest) {
  char terminator = '>';
  size_t lt = arg.find('<');
  if (lt != std::string_view::npos) {
    arg.remove_prefix(lt + 1);
  } else {
    terminator = ' ';
    size_t colon = arg.find(':');
    arg.remove_prefix(colon == std::string_view::npos ? arg.size() : colon + 1);
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  }
  if (!arg.empty() && arg.front() == '@') {  // source route
    size_t colon = arg.find(':');
    arg.remove_prefix(colon == std::string_view::npos ? arg.size() : colon + 1);
  }
  address.clear();
  bool esc = false, quoted = false;
  size_t i = 0;
  for (; i < arg.size(); ++i) {
    char c = arg[i];
    if (esc) {
      address.push_back(c);
      esc = false;
      continue;
    }
    if (!quoted && c == terminator) break;
    if (c == '\\')
      esc = true;
    else if (c == '"')
      quoted = !quoted;
    else
      address.push_back(c);
  }
  rest = std::string(i < arg.size() ? arg.substr(i + 1) : std::string_view());
  if (address.size() > 900) return false;
  return address.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
}

void DataReader::emit(char c) {
  ++bytes_;
  if (limit_ != 0 && bytes_ > limit_) overflow_ = true;
  if (!overflow_) message_.push_back(c);
  if (!inHeader_) return;
  if (c == '\n') {
    if (linePos_ == 0) inHeader_ = false;
    linePos_ = 0;
    return;
  }
  if (linePos_ < 9) prefix_[linePos_] = text::lowerChar(c);
  ++linePos_;
  // qmail counts "received" and "delivered" prefixes, with no colon check (so Received-SPF
  // counts too).
  if (linePos_ == 8 && std::string_view(prefix_, 8) == "received") ++hops_;
  if (linePos_ == 9 && std::string_view(prefix_, 9) == "delivered") ++hops_;
}

size_t DataReader::feed(std::string_view in) {
  size_t i = 0;
  while (i < in.size() && state_ == State::kMore) {
    char c = in[i++];
    switch (s_) {
      case 0:  // start of line
        if (c == '.') {
          s_ = 3;
          break;
        }
        [[fallthrough]];
      case 1:  // in a line
        if (c == '\r')
          s_ = 2;
        else if (c == '\n')
          state_ = State::kBareLf;
        else {
          emit(c);
          s_ = 1;
        }
        break;
      case 2:  // CR seen
        if (c == '\n') {
          emit('\n');
          s_ = 0;
        } else {
          emit('\r');  // a CR not followed by LF is kept
          s_ = 1;
          --i;  // look at c again as an ordinary byte
        }
        break;
      case 3:  // '.' at line start
        if (c == '\r')
          s_ = 4;
        else if (c == '\n')
          state_ = State::kBareLf;
        else {
          emit(c);
          s_ = 1;
        }
        break;
      case 4:  // ".\r" at line start
        if (c == '\n') {
          state_ = State::kDone;
        } else {
          s_ = 2;  // the dot was stuffing; the CR is pending
          --i;
        }
        break;
    }
  }
  return i;
}

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket sock, SessionParams p)
      : sock_(std::move(sock)),
        watchdog_(sock_.get_executor()),
        p_(std::move(p)),
        cfg_(*p_.config) {}

  asio::awaitable<void> run();
  bool usedTls() const { return tls_ != nullptr; }

 private:
  enum class Line { kOk, kEof, kTimeout, kTooLong, kError };

  asio::awaitable<size_t> readSome(char* buf, size_t n, std::error_code& ec);
  asio::awaitable<Line> readLine(std::string& line);
  asio::awaitable<bool> flush();
  asio::awaitable<bool> handshake();
  void reply(std::string_view line) {
    out_.append(line);
    out_.append("\r\n");
  }
  void arm() { armFor(std::chrono::seconds(cfg_.timeout)); }
  void armFor(std::chrono::seconds t);
  void disarm();
  void resetTransaction() {
    haveMail_ = false;
    badFrom_ = false;
    sender_.clear();
    rcpts_.clear();
  }

  void ehlo(std::string_view arg);
  void mail(std::string_view arg);
  void rcpt(std::string_view arg);
  asio::awaitable<bool> data();      // false: close the session
  asio::awaitable<bool> starttls();  // after the checks: 220, handshake, state reset
  std::string protocol() const;
  void logSession(std::string_view end);

  asio::ip::tcp::socket sock_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  daemon::Watchdog watchdog_;
  bool timedOut_ = false;
  SessionParams p_;
  const SmtpdConfig& cfg_;
  std::string in_, out_;
  bool discarding_ = false;
  std::string remoteIp_;

  std::string helo_;
  bool haveMail_ = false, badFrom_ = false;
  std::string sender_;
  std::vector<std::string> rcpts_;
  bool relayClient_ = false, certTried_ = false;
  CertDecision cert_;
  int accepted_ = 0, refusedRelay_ = 0;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::string relayUsed_ = "none";
  size_t injected_ = 0;
};

void Session::armFor(std::chrono::seconds t) {
  watchdog_.arm(weak_from_this(), t, [](Session& s) {
    s.timedOut_ = true;
    std::error_code ignored;
    s.sock_.cancel(ignored);
  });
}

void Session::disarm() { watchdog_.disarm(); }

asio::awaitable<size_t> Session::readSome(char* buf, size_t n, std::error_code& ec) {
  arm();
  size_t got;
  if (tls_)
    got = co_await tls_->async_read_some(asio::buffer(buf, n), redirect_error(use_awaitable, ec));
  else
    got = co_await sock_.async_read_some(asio::buffer(buf, n), redirect_error(use_awaitable, ec));
  disarm();
  co_return got;
}

asio::awaitable<bool> Session::flush() {
  if (out_.empty()) co_return true;
  std::error_code ec;
  arm();
  if (tls_)
    co_await asio::async_write(*tls_, asio::buffer(out_), redirect_error(use_awaitable, ec));
  else
    co_await asio::async_write(sock_, asio::buffer(out_), redirect_error(use_awaitable, ec));
  disarm();
  out_.clear();
  co_return !ec && !timedOut_;
}

// Replies are buffered while pipelined commands are waiting and flushed before every read
// that would block (RFC 2920).
asio::awaitable<Session::Line> Session::readLine(std::string& line) {
  for (;;) {
    size_t nl = in_.find('\n');
    if (nl != std::string::npos) {
      if (discarding_ || nl > p_.limits.maxLine) {
        in_.erase(0, nl + 1);
        discarding_ = false;
        co_return Line::kTooLong;
      }
      line.assign(in_, 0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      in_.erase(0, nl + 1);
      co_return Line::kOk;
    }
    if (in_.size() > p_.limits.maxLine) {  // bounded: the rest of this line is dropped
      discarding_ = true;
      in_.clear();
    }
    if (!co_await flush()) co_return timedOut_ ? Line::kTimeout : Line::kError;
    char buf[16384];
    std::error_code ec;
    size_t n = co_await readSome(buf, sizeof buf, ec);
    if (timedOut_) co_return Line::kTimeout;
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) co_return Line::kEof;
    if (ec) co_return Line::kError;
    in_.append(buf, n);
  }
}

asio::awaitable<bool> Session::handshake() {
  const tls::ServerContexts* contexts = cfg_.tlsFor(p_.listenerCiphers);
  ERR_clear_error();
  SSL* ssl = SSL_new(contexts->defaultCtx.get());
  if (ssl == nullptr) co_return false;
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(sock_, ssl);
  std::error_code ec;
  arm();
  co_await tls_->async_handshake(asio::ssl::stream_base::server, redirect_error(use_awaitable, ec));
  disarm();
  if (p_.metrics) p_.metrics->starttls.with({ec || timedOut_ ? "failed" : "ok"}).add(1);
  if (ec || timedOut_) {
    std::string why = timedOut_ ? "timeout" : ec.message();
    std::string queued = tls::drainErrors();
    log::info(text::cat("session client=", remoteIp_, " listener=", p_.listener,
                        " tls handshake failed: ", log::value(queued.empty() ? why : queued)));
    co_return false;
  }
  co_return true;
}

std::string Session::protocol() const {
  if (!tls_) return "SMTP";
  std::string p = text::cat("ESMTPS (", SSL_get_cipher_name(tls_->native_handle()), " encrypted)");
  if (cert_.allowed) p += text::cat("\n  (cert ", cert_.email, ")");
  return p;
}

void Session::ehlo(std::string_view arg) {
  helo_ = std::string(arg);
  resetTransaction();
  out_ += text::cat("250-", cfg_.greeting, "\r\n");
  if (!tls_ && cfg_.tlsFor(p_.listenerCiphers) != nullptr) out_ += "250-STARTTLS\r\n";
  out_ += "250-PIPELINING\r\n250-8BITMIME\r\n";
  reply(cfg_.databytes > 0 ? text::cat("250 SIZE ", cfg_.databytes) : std::string("250 SIZE"));
}

void Session::mail(std::string_view arg) {
  std::string addr, rest;
  if (!parseAddress(arg, addr, rest)) {
    reply("555 syntax error (#5.5.4)");
    return;
  }
  // SIZE=<n> (RFC 1870): refuse early what DATA would refuse anyway.
  for (std::string_view w : text::splitAny(rest, " ")) {
    if (text::startsWithIgnoreCase(w, "SIZE=") && cfg_.databytes > 0) {
      std::string n(w.substr(5));
      if (n.size() > 18 || n.find_first_not_of("0123456789") != std::string::npos ||
          (!n.empty() && std::stoll(n) > cfg_.databytes)) {
        reply("552 sorry, that message size exceeds my databytes limit (#5.3.4)");
        return;
      }
    }
  }
  resetTransaction();
  haveMail_ = true;
  sender_ = addr;
  badFrom_ = badMailFrom(cfg_, addr);
  reply("250 ok");
}

void Session::rcpt(std::string_view arg) {
  if (!haveMail_) {
    reply("503 MAIL first (#5.5.1)");
    return;
  }
  std::string addr, rest;
  if (!parseAddress(arg, addr, rest)) {
    reply("555 syntax error (#5.5.4)");
    return;
  }
  if (badFrom_) {
    reply("553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)");
    return;
  }
  if (rcpts_.size() >= p_.limits.maxRecipients) {
    reply("452 too many recipients (#4.5.3)");
    return;
  }
  bool allowed = relayClient_ || cert_.allowed;
  if (!allowed && rcpthostsAllow(cfg_, addr)) allowed = true;
  if (!allowed && tls_ && cfg_.certRelay) {
    // qmail-tls: the client certificate is consulted once per session, when a recipient would
    // otherwise be refused. It was asked for during the handshake (see docs/inbound.md).
    if (!certTried_) {
      cert_ = checkClientCertificate(tls_->native_handle(), cfg_.tlsclients);
      certTried_ = true;
      if (p_.metrics) p_.metrics->certRelay.with({cert_.allowed ? "allowed" : "refused"}).add(1);
      if (cert_.allowed) relayUsed_ = "cert";
    }
    if (cert_.allowed)
      allowed = true;
    else {
      ++refusedRelay_;
      reply(
          text::cat("553 sorry, that domain isn't in my list of allowed rcpthosts; no valid cert "
                    "for gatewaying",
                    cert_.reason.empty() ? "" : ": " + cert_.reason, " (#5.7.1)"));
      return;
    }
  }
  if (!allowed) {
    ++refusedRelay_;
    reply("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)");
    return;
  }
  rcpts_.push_back(addr);
  reply("250 ok");
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
  std::unique_ptr<QueueJob> job = QueueJob::start(sock_.get_executor(), p_.qmailQueue, cfg_.home);
  if (!job) {
    reply("451 qqt failure (#4.3.0)");
    co_return true;
  }
  reply("354 go ahead");
  bool feeding = co_await job->write(
      receivedLine("unknown", helo_, remoteIp_, cfg_.localName, protocol(), std::time(nullptr)));
  size_t limit = cfg_.databytes > 0 ? static_cast<size_t>(cfg_.databytes) : p_.limits.maxMessage;
  DataReader reader(limit);
  std::string end;  // why the session ends early, if it does
  for (;;) {
    size_t used = reader.feed(in_);
    in_.erase(0, used);
    // Hop or size overflow: stop feeding (the message will be refused), keep reading to the dot.
    if (reader.overflow() || reader.hops() >= 100) feeding = false;
    if (reader.pending() >= 65536 || reader.state() != DataReader::State::kMore) {
      std::string chunk = reader.take();
      if (feeding) feeding = co_await job->write(chunk);
    }
    if (reader.state() == DataReader::State::kDone) break;
    if (reader.state() == DataReader::State::kBareLf) {
      reply("451 See http://pobox.com/~djb/docs/smtplf.html.");
      end = "bare-lf";
      break;
    }
    if (!co_await flush()) {
      end = "eof-in-data";
      break;
    }
    char buf[65536];
    std::error_code ec;
    size_t n = co_await readSome(buf, sizeof buf, ec);
    if (timedOut_) {
      reply("451 timeout (#4.4.2)");
      end = "timeout-in-data";
      break;
    }
    if (ec) {  // client gone in the middle of DATA
      end = "eof-in-data";
      break;
    }
    in_.append(buf, n);
  }
  if (!end.empty()) {
    co_await job->abort();
    co_await flush();
    logSession(end);
    co_return false;
  }
  std::string result;
  if (reader.hops() >= 100) {
    co_await job->abort();
    result = "554 too many hops, this message is looping (#5.4.6)";
  } else if (reader.overflow()) {
    co_await job->abort();
    result = "552 sorry, that message size exceeds my databytes limit (#5.3.4)";
  } else {
    QueueResult q = co_await job->commit(envelopeBytes(sender_, rcpts_));
    result = queueReply(q, std::time(nullptr));
    if (q.started && !q.crashed && q.exitCode == 0 && !q.writeError) ++accepted_;
  }
  if (p_.metrics)
    p_.metrics->messages
        .with({result[0] == '2'   ? "accepted"
               : result[0] == '4' ? "temporary"
                                  : "permanent"})
        .add(1);
  resetTransaction();
  reply(result);
  co_return true;
}

asio::awaitable<bool> Session::starttls() {
  reply("220 ready for tls");
  if (!co_await flush()) co_return false;
  if (!co_await handshake()) {
    logSession("tls-failed");
    co_return false;
  }
  // RFC 3207: all state from before TLS is forgotten.
  helo_.clear();
  resetTransaction();
  certTried_ = false;
  co_return true;
}

void Session::logSession(std::string_view end) {
  std::string tlsDesc = "-/-", certDesc = "-", verify = "-";
  admin::SessionEvent e;
  if (tls_) {
    SSL* ssl = tls_->native_handle();
    e.tlsVersion = SSL_get_version(ssl);
    e.cipher = SSL_get_cipher_name(ssl);
    e.resumed = SSL_session_reused(ssl) == 1;
    tlsDesc = text::cat(SSL_get_version(ssl), "/", SSL_get_cipher_name(ssl));
    tls::X509Ptr peer(SSL_get1_peer_certificate(ssl));
    if (peer) {
      char buf[512];
      X509_NAME_oneline(X509_get_subject_name(peer.get()), buf, sizeof buf);
      certDesc = buf;
      long v = SSL_get_verify_result(ssl);
      verify = v == X509_V_OK ? "ok" : text::cat("fail:", X509_verify_cert_error_string(v));
    } else {
      verify = "none";
    }
  }
  log::info(text::cat("session client=", remoteIp_, " listener=", p_.listener, " tls=", tlsDesc,
                      " cert=", log::value(certDesc), " verify=", log::value(verify),
                      " relay=", relayUsed_, " relay_refused=", refusedRelay_,
                      " accepted=", accepted_, " injected_bytes=", injected_, " end=", end));
  const char* mode = p_.implicitTls ? "implicit" : tls_ ? "starttls" : "plain";
  const bool up = tls_ && SSL_is_init_finished(tls_->native_handle());
  if (tls_ && !up) {
    e.failureReason = "handshake";
    e.tlsVersion = e.cipher = "-";
  }
  if (up && p_.metrics)
    p_.metrics->tlsSessions.with({mode, e.tlsVersion, e.cipher, e.resumed ? "yes" : "no"}).add(1);
  if (p_.events == nullptr) return;
  e.endTime = admin::unixNow();
  e.direction = "inbound";
  e.peer = remoteIp_;
  e.domain = helo_;
  e.levelRequested = "-";
  e.levelAchieved = up ? (verify == "ok" ? "verify" : "encrypt") : "none";
  e.policySource = "relay:" + relayUsed_;
  e.verify = verify;
  e.outcome = std::string(end);
  e.tlsMode = mode;
  e.messages = static_cast<uint32_t>(accepted_);
  e.durationSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  e.policyGeneration = cfg_.generation;
  p_.events->publish(e);
}

asio::awaitable<void> Session::run() {
  std::error_code ec;
  auto ep = sock_.remote_endpoint(ec);
  remoteIp_ = ec ? "unknown" : unmapped(ep.address()).to_string();
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!ec)
    for (const auto& c : cfg_.relayClients)
      if (c.contains(ep.address())) {
        relayClient_ = true;
        relayUsed_ = "relayclient";
      }
  if (p_.implicitTls) {
    bool up = cfg_.tlsFor(p_.listenerCiphers) != nullptr;
    if (up) up = co_await handshake();
    if (!up) {
      logSession("tls-failed");
      co_return;
    }
  }
  reply(text::cat("220 ", cfg_.greeting, " ESMTP"));
  std::string line;
  for (;;) {
    Line st = co_await readLine(line);
    if (st == Line::kEof || st == Line::kError) {
      logSession("eof");
      break;
    }
    if (st == Line::kTimeout) {
      reply("451 timeout (#4.4.2)");
      timedOut_ = false;
      co_await flush();
      logSession("timeout");
      break;
    }
    if (st == Line::kTooLong) {
      reply("500 command line too long (#5.5.2)");
      continue;
    }
    size_t sp = line.find(' ');
    std::string verb = text::lower(std::string_view(line).substr(0, sp));
    std::string_view arg =
        sp == std::string::npos ? std::string_view() : std::string_view(line).substr(sp + 1);
    if (verb == "helo") {
      helo_ = std::string(arg);
      resetTransaction();
      reply(text::cat("250 ", cfg_.greeting));
    } else if (verb == "ehlo") {
      ehlo(arg);
    } else if (verb == "mail") {
      mail(arg);
    } else if (verb == "rcpt") {
      rcpt(arg);
    } else if (verb == "data") {
      if (!co_await data()) break;
    } else if (verb == "rset") {
      resetTransaction();
      reply("250 flushed");
    } else if (verb == "noop") {
      reply("250 ok");
    } else if (verb == "vrfy") {
      reply("252 send some mail, i'll try my best");
    } else if (verb == "help") {
      reply("214 qtls-smtpd: qmail-smtpd with TLS; see its docs/inbound.md");
    } else if (verb == "quit") {
      reply(text::cat("221 ", cfg_.greeting));
      co_await flush();
      if (tls_) {
        // close_notify goes out at once; waiting for the client's own is bounded, since many
        // clients simply close the connection after 221.
        armFor(std::chrono::seconds(1));
        co_await tls_->async_shutdown(redirect_error(use_awaitable, ec));
        disarm();
      }
      logSession("quit");
      break;
    } else if (verb == "starttls") {
      // Whatever the client pipelined after STARTTLS was sent in plain text: it is discarded,
      // never executed (CVE-2011-0411 class), also when STARTTLS is refused, as qmail-tls does.
      injected_ += in_.size();
      in_.clear();
      if (!arg.empty())
        reply("501 Syntax error (no parameters allowed) (#5.5.4)");
      else if (tls_)
        reply("502 unimplemented (#5.5.1)");
      else if (cfg_.tlsFor(p_.listenerCiphers) == nullptr)
        reply("454 TLS missing certificate (#4.3.0)");
      else if (!co_await starttls())
        break;
    } else {
      reply("502 unimplemented (#5.5.1)");
    }
  }
  sock_.close(ec);
}

}  // namespace

asio::awaitable<void> runSession(asio::ip::tcp::socket socket, SessionParams params) {
  AgentMetrics* m = params.metrics;
  const bool implicit = params.implicitTls;
  struct Open {  // a guard: a session may be destroyed mid-way at shutdown
    AgentMetrics* m;
    explicit Open(AgentMetrics* metrics) : m(metrics) {
      if (m) m->sessionsOpen().add(1);
    }
    ~Open() {
      if (m) m->sessionsOpen().add(-1);
    }
  } open(m);
  auto s = std::make_shared<Session>(std::move(socket), std::move(params));
  co_await s->run();
  if (m) m->sessions.with({implicit ? "implicit" : s->usedTls() ? "starttls" : "plain"}).add(1);
}

}  // namespace qtls::agent
