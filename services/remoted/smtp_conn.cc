// Outbound SMTP connection I/O over the shared stream (net/smtp_stream.h).
#include "smtp_conn.h"

#include <poll.h>

#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>

namespace qtls::remoted {

using asio::redirect_error;
using asio::use_awaitable;

namespace {
std::atomic<bool> quickAck{true};
std::atomic<int> quits{0};

std::error_code timedOutOr(const net::SmtpStream& s, std::error_code ec) {
  return s.timedOut() ? std::make_error_code(std::errc::timed_out) : ec;
}
}  // namespace

SmtpConn::SmtpConn(asio::any_io_executor ex) : stream_(ex, net::SmtpStream::OnTimeout::kClose) {
  stream_.quickAck(quickAck);
}
SmtpConn::~SmtpConn() = default;

void SmtpConn::setQuickAck(bool on) { quickAck = on; }

std::error_code SmtpConn::adopt(int fd) {
  std::error_code ec;
  stream_.socket().assign(asio::ip::tcp::v4(), fd, ec);
  return ec;
}

bool SmtpConn::idleFit() {
  if (!stream_.socket().is_open() || timedOut() || !buf_.empty()) return false;
  if (stream_.tls() && stream_.unread() > 0) return false;
  pollfd p{stream_.socket().native_handle(), POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 0;
}

void SmtpConn::quitDetached(std::shared_ptr<SmtpConn> conn) {
  auto ex = conn->executor();
  ++quits;
  asio::co_spawn(
      ex, [c = std::move(conn)]() -> asio::awaitable<void> { co_await c->quit(); },
      [](std::exception_ptr) { --quits; });
}

int SmtpConn::quitsInFlight() { return quits.load(); }

void SmtpConn::closeFromOutside(std::shared_ptr<SmtpConn> conn) {
  auto ex = conn->executor();
  asio::post(ex, [c = std::move(conn)] { c->close(); });
}

asio::awaitable<std::error_code> SmtpConn::connect(const asio::ip::tcp::endpoint& ep,
                                                   std::chrono::seconds timeout) {
  std::error_code ec;
  auto& sock = stream_.socket();
  sock.open(ep.protocol(), ec);
  if (ec) co_return ec;
  stream_.arm(weak_from_this(), timeout);
  co_await sock.async_connect(ep, redirect_error(use_awaitable, ec));
  disarm();
  if (timedOut()) co_return std::make_error_code(std::errc::timed_out);
  if (!ec) sock.set_option(asio::ip::tcp::no_delay(true), ec);
  co_return ec;
}

asio::awaitable<std::error_code> SmtpConn::write(std::string_view data) {
  arm();
  std::error_code ec = co_await stream_.write(data);
  disarm();
  co_return timedOutOr(stream_, ec);
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
    arm();
    size_t n = co_await stream_.readSome(chunk, sizeof chunk, out.ec);
    disarm();
    out.ec = timedOutOr(stream_, out.ec);
    if (out.ec) co_return out;
    buf_.append(chunk, n);
  }
}

asio::awaitable<std::error_code> SmtpConn::handshake(tls::SslPtr ssl, size_t& discarded) {
  discarded = buf_.size();
  buf_.clear();
  arm();
  std::error_code ec = co_await stream_.handshake(ssl.release(), asio::ssl::stream_base::client);
  disarm();
  co_return timedOutOr(stream_, ec);
}

size_t SmtpConn::unread() { return buf_.size() + stream_.unread(); }

SSL* SmtpConn::ssl() const { return stream_.ssl(); }

asio::awaitable<void> SmtpConn::quit() {
  auto self = shared_from_this();
  if (!stream_.socket().is_open()) co_return;
  timeout_ = std::chrono::seconds(5);
  if (!co_await write("QUIT\r\n")) {
    (void)co_await readReply();
    if (stream_.tls()) {
      arm();
      (void)co_await stream_.shutdownTls();
      disarm();
    }
  }
  close();
}

void SmtpConn::close() { stream_.close(); }

}  // namespace qtls::remoted
