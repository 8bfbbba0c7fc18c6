// SmtpStream (smtp_stream.h).
#include "net/smtp_stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace qtls::net {

using asio::redirect_error;
using asio::use_awaitable;

void SmtpStream::expire() {
  timedOut_ = true;
  std::error_code ignored;
  if (how_ == OnTimeout::kClose)
    sock_.close(ignored);
  else
    sock_.cancel(ignored);
}

void SmtpStream::ackNow() {
  if (!quickAck_ || !sock_.is_open()) return;
  int one = 1;
  ::setsockopt(sock_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

asio::awaitable<size_t> SmtpStream::readSome(char* p, size_t n, std::error_code& ec) {
  size_t got;
  if (tls_)
    got = co_await tls_->async_read_some(asio::buffer(p, n), redirect_error(use_awaitable, ec));
  else
    got = co_await sock_.async_read_some(asio::buffer(p, n), redirect_error(use_awaitable, ec));
  if (!ec) ackNow();
  co_return got;
}

asio::awaitable<std::error_code> SmtpStream::write(std::string_view data) {
  std::error_code ec;
  if (tls_)
    co_await asio::async_write(*tls_, asio::buffer(data), redirect_error(use_awaitable, ec));
  else
    co_await asio::async_write(sock_, asio::buffer(data), redirect_error(use_awaitable, ec));
  if (!ec) ackNow();
  co_return ec;
}

asio::awaitable<std::error_code> SmtpStream::handshake(SSL* ssl,
                                                       asio::ssl::stream_base::handshake_type who) {
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(sock_, ssl);
  std::error_code ec;
  co_await tls_->async_handshake(who, redirect_error(use_awaitable, ec));
  if (!ec) ackNow();
  co_return ec;
}

asio::awaitable<std::error_code> SmtpStream::shutdownTls() {
  std::error_code ec;
  if (tls_ && sock_.is_open()) co_await tls_->async_shutdown(redirect_error(use_awaitable, ec));
  co_return ec;
}

size_t SmtpStream::unread() {
  if (tls_) {
    const int p = SSL_pending(tls_->native_handle());
    return p > 0 ? static_cast<size_t>(p) : 0;
  }
  if (!sock_.is_open()) return 0;
  std::error_code ec;
  return sock_.available(ec);
}

void SmtpStream::close() {
  std::error_code ignored;
  watchdog_.disarm();
  sock_.close(ignored);
}

void SmtpStream::keepSessionResumable() {
  if (tls_ && SSL_is_init_finished(tls_->native_handle()))
    SSL_set_shutdown(tls_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

void SmtpStream::cancel() {
  std::error_code ignored;
  sock_.cancel(ignored);
}

}  // namespace qtls::net
