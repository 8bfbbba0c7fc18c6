// The inbound SMTP session: I/O with its timeouts and deadlines, the command loop and the
// commands. DATA is in session_data.cc, the session's log line in session_log.cc.
#include "session.h"

#include <openssl/err.h>

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>

#include "log/log.h"
#include "session_impl.h"
#include "tls/errors.h"
#include "util/text.h"

namespace qtls::agent {

using asio::redirect_error;
using asio::use_awaitable;

Session::Session(asio::ip::tcp::socket sock, SessionParams p)
    : stream_(std::move(sock), net::SmtpStream::OnTimeout::kCancel),
      p_(std::move(p)),
      cfg_(*p_.config),
      reader_(p_.limits.maxLine) {}

Session::~Session() {
  if (p_.registry && registryId_ != 0) p_.registry->remove(registryId_);
}

void Session::close(Close how) {
  if (how == Close::kEvict) {
    // Chosen while waiting, but busy since (qmail-queue has the message, or a reply is going
    // out): that session is making progress.
    if (closing_ || (inData_ && !reading_)) return;
  } else if (closing_ && (how == Close::kWhenIdle || closeHow_ == Close::kNow)) {
    return;
  }
  closing_ = true;
  closeHow_ = how;
  // A session waiting for the client hears it at once; a message in progress is finished
  // first unless the drain ran out. Only a wait for the client is cancelled, never a write: a
  // 250 on its way must arrive.
  if (reading_ && (!inData_ || how != Close::kWhenIdle)) stream_.cancel();
}

std::string Session::closingReply() const {
  return closeHow_ == Close::kEvict
             ? text::cat("421 ", cfg_.greeting,
                         " closing an idle connection: too many connections (#4.3.2)")
             : text::cat("421 ", cfg_.greeting,
                         " closing connection: server shutting down, try again later (#4.3.2)");
}

void Session::arm() {
  const auto now = Clock::now();
  Clock::duration t = std::chrono::seconds(cfg_.timeout);
  if (deadline_ != Clock::time_point::max()) t = std::min(t, std::max(deadline_ - now, {}));
  armFor(t);
}

void Session::armFor(Clock::duration t) { stream_.arm(weak_from_this(), t); }

void Session::disarm() { stream_.disarm(); }

void Session::setWaiting(bool waiting) {
  if (p_.registry && registryId_ != 0) p_.registry->setWaiting(registryId_, waiting);
}

void Session::progress() {
  commandsWithoutProgress_ = 0;
  if (p_.registry && registryId_ != 0) p_.registry->progress(registryId_);
}

size_t Session::messageLimit() const {
  return cfg_.databytes > 0 ? static_cast<size_t>(cfg_.databytes) : p_.limits.maxMessage;
}

asio::awaitable<size_t> Session::readSome(char* buf, size_t n, std::error_code& ec) {
  arm();
  reading_ = true;
  size_t got;
  got = co_await stream_.readSome(buf, n, ec);
  reading_ = false;
  disarm();
  co_return got;
}

asio::awaitable<bool> Session::flush() {
  if (out_.empty()) co_return true;
  if (writeStalled_) {  // the client stopped reading: the 451 after it would wait once more
    out_.clear();
    co_return false;
  }
  std::error_code ec;
  // A client that does not read its replies is bounded like one that sends slowly.
  armFor(std::min<Clock::duration>(std::chrono::seconds(cfg_.timeout), p_.limits.commandTimeout));
  ec = co_await stream_.write(out_);
  disarm();
  out_.clear();
  if (stream_.timedOut()) writeStalled_ = true;
  co_return !ec && !stream_.timedOut();
}

// Replies are buffered while pipelined commands are waiting and flushed before every read
// that would block (RFC 2920). Idle time between commands is bounded by timeoutsmtpd per read;
// once a line has begun it must be complete within the command timeout.
asio::awaitable<Session::Line> Session::readLine(std::string& line) {
  for (;;) {
    switch (reader_.next(line)) {
      case LineReader::Result::kLine:
        deadline_ = Clock::time_point::max();
        co_return Line::kOk;
      case LineReader::Result::kTooLong:
        deadline_ = Clock::time_point::max();
        co_return Line::kTooLong;
      case LineReader::Result::kNeedMore:
        break;
    }
    if (!co_await flush()) co_return stream_.timedOut() ? Line::kTimeout : Line::kError;
    // Stopping or evicted: a command line begun is dropped too (the client will retry).
    if (closing_) co_return Line::kClosing;
    if (!reader_.midLine())
      deadline_ = Clock::time_point::max();
    else if (deadline_ == Clock::time_point::max())
      deadline_ = Clock::now() + p_.limits.commandTimeout;
    // Evictable while waiting, a line begun or not: what counts is the last progress of a
    // transaction, so a client sending NOOPs or dribbling its lines is as idle as a silent one.
    setWaiting(true);
    char buf[16384];
    std::error_code ec;
    size_t n = co_await readSome(buf, sizeof buf, ec);
    setWaiting(false);
    if (stream_.timedOut()) co_return Line::kTimeout;
    if (closing_ && ec == asio::error::operation_aborted) co_return Line::kClosing;
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) co_return Line::kEof;
    if (ec) co_return Line::kError;
    reader_.append(std::string_view(buf, n));
    if (reader_.midLine() && deadline_ == Clock::time_point::max())
      deadline_ = Clock::now() + p_.limits.commandTimeout;
  }
}

asio::awaitable<bool> Session::handshake() {
  const tls::ServerContexts* contexts = cfg_.tlsFor(p_.listenerCiphers);
  ERR_clear_error();
  SSL* ssl = SSL_new(contexts->defaultCtx.get());
  if (ssl == nullptr) co_return false;
  std::error_code ec;
  // A handshake is bounded like a command line, and the session is evictable meanwhile.
  deadline_ = Clock::now() + p_.limits.commandTimeout;
  arm();
  reading_ = true;
  setWaiting(true);
  ec = co_await stream_.handshake(ssl, asio::ssl::stream_base::server);
  setWaiting(false);
  reading_ = false;
  disarm();
  deadline_ = Clock::time_point::max();
  const bool timedOut = stream_.timedOut();
  if (p_.metrics) p_.metrics->starttls.with({ec || timedOut ? "failed" : "ok"}).add(1);
  if (ec || timedOut) {
    std::string why = timedOut ? "timeout" : ec.message();
    std::string queued = tls::drainErrors();
    log::info(text::cat("session client=", remoteIp_, " listener=", p_.listener,
                        " tls handshake failed: ", log::value(queued.empty() ? why : queued)));
    co_return false;
  }
  co_return true;
}

std::string Session::protocol() const {
  if (!stream_.tls()) return "SMTP";
  std::string p = text::cat("ESMTPS (", SSL_get_cipher_name(stream_.ssl()), " encrypted)");
  if (cert_.allowed) p += text::cat("\n  (cert ", cert_.email, ")");
  return p;
}

void Session::ehlo(std::string_view arg) {
  helo_ = std::string(arg);
  resetTransaction();
  out_ += text::cat("250-", cfg_.greeting, "\r\n");
  if (!stream_.tls() && cfg_.tlsFor(p_.listenerCiphers) != nullptr) out_ += "250-STARTTLS\r\n";
  out_ += "250-PIPELINING\r\n250-8BITMIME\r\n";
  // The limit in force, also when control/databytes is 0 and --max-message applies.
  reply(text::cat("250 SIZE ", messageLimit()));
}

void Session::mail(std::string_view arg) {
  std::string addr, rest;
  if (!parseAddress(arg, addr, rest)) {
    reply("555 syntax error (#5.5.4)");
    return;
  }
  // SIZE=<n> (RFC 1870): refuse early what DATA would refuse anyway.
  for (std::string_view w : text::splitAny(rest, " ")) {
    if (text::startsWithIgnoreCase(w, "SIZE=")) {
      std::string n(w.substr(5));
      if (n.size() > 18 || n.find_first_not_of("0123456789") != std::string::npos ||
          (!n.empty() && std::stoull(n) > messageLimit())) {
        reply("552 sorry, that message size exceeds my databytes limit (#5.3.4)");
        return;
      }
    }
  }
  resetTransaction();
  haveMail_ = true;
  sender_ = addr;
  badFrom_ = badMailFrom(cfg_, addr);
  progress();
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
  if (!allowed && stream_.tls() && cfg_.certRelay && !certTried_) {
    // qmail-tls: the client certificate is consulted once per session, when a recipient would
    // otherwise be refused. It was asked for during the handshake (see docs/inbound.md).
    cert_ = checkClientCertificate(stream_.ssl(), cfg_.tlsclients);
    certTried_ = true;
    if (p_.metrics) p_.metrics->certRelay.with({cert_.allowed ? "allowed" : "refused"}).add(1);
    if (cert_.allowed) {
      relayUsed_ = "cert";
      allowed = true;
    }
  }
  if (!allowed) {
    ++refusedRelay_;
    // qmail-tls adds "no valid cert for gatewaying" to every refusal while TLS is active, with
    // the reason when a certificate was checked (spec 4.6 step 5).
    if (stream_.tls())
      reply(
          text::cat("553 sorry, that domain isn't in my list of allowed rcpthosts; no valid cert "
                    "for gatewaying",
                    cert_.reason.empty() ? "" : ": " + cert_.reason, " (#5.7.1)"));
    else
      reply("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)");
    return;
  }
  rcpts_.push_back(addr);
  progress();
  reply("250 ok");
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

void Session::identifyPeer() {
  std::error_code ec, lec;
  const auto ep = stream_.socket().remote_endpoint(ec);
  const auto local = stream_.socket().local_endpoint(lec);
  remoteIp_ = ec ? "unknown" : unmapped(ep.address()).to_string();
  remotePort_ = ec ? "0" : std::to_string(ep.port());
  localIp_ = lec ? "unknown" : unmapped(local.address()).to_string();
  localPort_ = lec ? "0" : std::to_string(local.port());
  std::error_code ignored;
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  if (!ec)
    for (const auto& c : cfg_.relayClients)
      if (c.contains(ep.address())) {
        relayClient_ = true;
        relayUsed_ = "relayclient";
      }
}

asio::awaitable<bool> Session::endsOn(Line st) {
  if (st == Line::kEof || st == Line::kError) {
    if (st == Line::kEof) stream_.keepSessionResumable();
    logSession("eof");
    co_return true;
  }
  if (st == Line::kTimeout) {
    reply("451 timeout (#4.4.2)");
    stream_.clearTimedOut();
    co_await flush();
    if (p_.metrics) p_.metrics->closedByLimit.with({"timeout"}).add(1);
    logSession("timeout");
    co_return true;
  }
  if (st == Line::kClosing) {
    reply(closingReply());
    co_await flush();
    const bool evicted = closeHow_ == Close::kEvict;
    if (p_.metrics) p_.metrics->closedByLimit.with({evicted ? "evicted" : "shutdown"}).add(1);
    logSession(evicted ? "evicted" : "shutdown");
    co_return true;
  }
  co_return false;
}

asio::awaitable<void> Session::run() {
  identifyPeer();
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
    if (co_await endsOn(st)) break;
    if (st == Line::kTooLong) {
      reply("500 command line too long (#5.5.2)");
      continue;
    }
    std::string verb;
    std::string_view arg;
    splitCommand(line, verb, arg);
    if (++commandsWithoutProgress_ > p_.limits.maxJunkCommands && verb != "quit") {
      // NOOP loops, RSET loops, recipient guessing: a session is for mail.
      reply(text::cat("421 ", cfg_.greeting,
                      " too many commands without a message; closing connection (#4.7.0)"));
      co_await flush();
      if (p_.metrics) p_.metrics->closedByLimit.with({"junk_commands"}).add(1);
      logSession("junk-commands");
      break;
    }
    if (!co_await command(verb, arg)) break;
  }
  stream_.close();
}

asio::awaitable<bool> Session::command(const std::string& verb, std::string_view arg) {
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
    co_return co_await data();
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
    if (stream_.tls()) {
      // close_notify goes out at once; waiting for the client's own is bounded, since many
      // clients simply close the connection after 221.
      armFor(std::chrono::seconds(1));
      (void)co_await stream_.shutdownTls();
      disarm();
    }
    logSession("quit");
    co_return false;
  } else if (verb == "starttls") {
    // Whatever the client pipelined after STARTTLS was sent in plain text: it is discarded,
    // never executed (CVE-2011-0411 class), also when STARTTLS is refused, as qmail-tls does.
    injected_ += reader_.buffer().size();
    reader_.buffer().clear();
    if (!arg.empty())
      reply("501 Syntax error (no parameters allowed) (#5.5.4)");
    else if (stream_.tls())
      reply("502 unimplemented (#5.5.1)");
    else if (cfg_.tlsFor(p_.listenerCiphers) == nullptr)
      reply("454 TLS missing certificate (#4.3.0)");
    else
      co_return co_await starttls();
  } else {
    reply("502 unimplemented (#5.5.1)");
  }
  co_return true;
}

asio::awaitable<void> runSession(asio::ip::tcp::socket socket, SessionParams params) {
  AgentMetrics* m = params.metrics;
  const bool implicit = params.implicitTls;
  stats::GaugeGuard open(m ? &m->sessionsOpen : nullptr);
  auto ex = socket.get_executor();
  SessionRegistry* registry = params.registry;
  auto s = std::make_shared<Session>(std::move(socket), std::move(params));
  if (registry) s->registered(registry->add(s, ex));
  co_await s->run();
  if (m) m->sessions.with({implicit ? "implicit" : s->usedTls() ? "starttls" : "plain"}).add(1);
}

}  // namespace qtls::agent
