// Outbound SMTP connection I/O.
#include "smtp_conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>

namespace qtls::remoted {

using asio::redirect_error;
using asio::use_awaitable;

namespace {
std::atomic<bool> quickAck{true};
}

SmtpConn::SmtpConn(asio::any_io_executor ex) : sock_(ex), watchdog_(ex) {}
SmtpConn::~SmtpConn() = default;

void SmtpConn::setQuickAck(bool on) { quickAck = on; }

// Linux leaves quick-ACK mode by itself (after we send, it goes back to delaying ACKs): so it
// is re-armed after every read, every write and the handshake. Otherwise a server that writes
// twice in a row (its TLS session ticket, then a reply) waits ~40 ms for our delayed ACK
// under Nagle.
void SmtpConn::quickAckNow() {
  if (!quickAck || !sock_.is_open()) return;
  int one = 1;
  ::setsockopt(sock_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

std::error_code SmtpConn::adopt(int fd) {
  std::error_code ec;
  sock_.assign(asio::ip::tcp::v4(), fd, ec);
  return ec;
}

bool SmtpConn::idleFit() {
  if (!sock_.is_open() || timedOut_ || !buf_.empty()) return false;
  if (tls_ && SSL_pending(tls_->native_handle()) > 0) return false;
  pollfd p{sock_.native_handle(), POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 0;
}

void SmtpConn::quitDetached(std::shared_ptr<SmtpConn> conn) {
  auto ex = conn->executor();
  asio::co_spawn(
      ex, [c = std::move(conn)]() -> asio::awaitable<void> { co_await c->quit(); }, asio::detached);
}

void SmtpConn::closeFromOutside(std::shared_ptr<SmtpConn> conn) {
  auto ex = conn->executor();
  asio::post(ex, [c = std::move(conn)] { c->close(); });
}

// The watchdog closes the socket when an operation outlives its deadline; the pending operation
// then fails and the caller sees timedOut().
void SmtpConn::arm() {
  watchdog_.arm(weak_from_this(), timeout_, [](SmtpConn& c) {
    c.timedOut_ = true;
    std::error_code ignored;
    c.sock_.close(ignored);
  });
}

void SmtpConn::disarm() { watchdog_.disarm(); }

asio::awaitable<std::error_code> SmtpConn::connect(const asio::ip::tcp::endpoint& ep,
                                                   std::chrono::seconds timeout) {
  std::error_code ec;
  auto saved = timeout_;
  timeout_ = timeout;
  sock_.open(ep.protocol(), ec);
  if (ec) co_return ec;
  arm();
  co_await sock_.async_connect(ep, redirect_error(use_awaitable, ec));
  disarm();
  timeout_ = saved;
  if (timedOut_) co_return std::make_error_code(std::errc::timed_out);
  if (!ec) sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  co_return ec;
}

asio::awaitable<std::error_code> SmtpConn::write(std::string_view data) {
  std::error_code ec;
  arm();
  if (tls_)
    co_await asio::async_write(*tls_, asio::buffer(data), redirect_error(use_awaitable, ec));
  else
    co_await asio::async_write(sock_, asio::buffer(data), redirect_error(use_awaitable, ec));
  disarm();
  if (!ec) quickAckNow();
  if (timedOut_) ec = std::make_error_code(std::errc::timed_out);
  co_return ec;
}

asio::awaitable<std::size_t> SmtpConn::readSome(char* p, size_t n, std::error_code& ec) {
  arm();
  size_t got;
  if (tls_)
    got = co_await tls_->async_read_some(asio::buffer(p, n), redirect_error(use_awaitable, ec));
  else
    got = co_await sock_.async_read_some(asio::buffer(p, n), redirect_error(use_awaitable, ec));
  disarm();
  if (!ec) quickAckNow();
  if (timedOut_) ec = std::make_error_code(std::errc::timed_out);
  co_return got;
}

asio::awaitable<SmtpConn::ReadResult> SmtpConn::readReply() {
  ReadResult out;
  smtp::ReplyParser parser;
  for (;;) {
    size_t used = parser.feed(buf_);
    buf_.erase(0, used);
    if (parser.state() == smtp::ReplyParser::State::kDone) {
      out.reply = parser.reply();
      co_return out;
    }
    if (parser.state() == smtp::ReplyParser::State::kError) {
      out.protocolError = parser.error();
      co_return out;
    }
    char chunk[4096];
    size_t n = co_await readSome(chunk, sizeof chunk, out.ec);
    if (out.ec) co_return out;
    buf_.append(chunk, n);
  }
}

asio::awaitable<std::error_code> SmtpConn::handshake(tls::SslPtr ssl, size_t& discarded) {
  discarded = buf_.size();
  buf_.clear();
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(sock_, ssl.release());
  std::error_code ec;
  arm();
  co_await tls_->async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, ec));
  disarm();
  if (!ec) quickAckNow();
  if (timedOut_) ec = std::make_error_code(std::errc::timed_out);
  co_return ec;
}

size_t SmtpConn::unread() {
  size_t n = buf_.size();
  if (tls_) {
    int p = SSL_pending(tls_->native_handle());
    if (p > 0) n += static_cast<size_t>(p);
  } else if (sock_.is_open()) {
    std::error_code ec;
    n += sock_.available(ec);
  }
  return n;
}

SSL* SmtpConn::ssl() const { return tls_ ? tls_->native_handle() : nullptr; }

asio::awaitable<void> SmtpConn::quit() {
  auto self = shared_from_this();
  if (!sock_.is_open()) co_return;
  timeout_ = std::chrono::seconds(5);
  if (!co_await write("QUIT\r\n")) {
    (void)co_await readReply();
    if (tls_ && sock_.is_open()) {
      std::error_code ec;
      arm();
      co_await tls_->async_shutdown(redirect_error(use_awaitable, ec));
      disarm();
    }
  }
  close();
}

void SmtpConn::close() {
  std::error_code ignored;
  watchdog_.disarm();
  sock_.close(ignored);
}

}  // namespace qtls::remoted
