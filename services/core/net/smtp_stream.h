// The byte stream under an SMTP dialogue, for both daemons: a TCP socket that may turn to TLS
// (STARTTLS, either side, or implicit TLS), and a per-operation deadline. arm() before an
// operation, disarm() after; if the deadline passes first the socket is cancelled (the
// agent: the session goes on to say 421) or closed (the client: the connection is over), the
// pending operation fails, and timedOut() says why.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <chrono>
#include <memory>
#include <string_view>
#include <system_error>

#include "daemon/watchdog.h"

namespace qtls::net {

class SmtpStream {
 public:
  enum class OnTimeout { kCancel, kClose };
  SmtpStream(asio::ip::tcp::socket sock, OnTimeout how)
      : sock_(std::move(sock)), watchdog_(sock_.get_executor()), how_(how) {}
  SmtpStream(asio::any_io_executor ex, OnTimeout how) : sock_(ex), watchdog_(ex), how_(how) {}

  asio::ip::tcp::socket& socket() { return sock_; }
  asio::any_io_executor executor() { return sock_.get_executor(); }

  // `owner` holds this stream and has stream() returning it; the deadline does nothing once
  // the owner is gone.
  template <typename Owner>
  void arm(std::weak_ptr<Owner> owner, std::chrono::steady_clock::duration d) {
    watchdog_.arm(std::move(owner), d, [](Owner& o) { o.stream().expire(); });
  }
  void disarm() { watchdog_.disarm(); }
  void expire();
  bool timedOut() const { return timedOut_; }
  void clearTimedOut() { timedOut_ = false; }

  // Plain or TLS, whichever is active. Errors in `ec` / the result; no deadline of their own.
  asio::awaitable<size_t> readSome(char* p, size_t n, std::error_code& ec);
  asio::awaitable<std::error_code> write(std::string_view data);
  // Starts TLS with `ssl` (ownership passes here) on the plain socket.
  asio::awaitable<std::error_code> handshake(SSL* ssl, asio::ssl::stream_base::handshake_type who);
  asio::awaitable<std::error_code> shutdownTls();
  SSL* ssl() const { return tls_ ? tls_->native_handle() : nullptr; }
  bool tls() const { return tls_ != nullptr; }
  // Bytes received and not read yet: OpenSSL's (TLS) or the socket's (plain).
  size_t unread();

  // TCP_QUICKACK now (Linux leaves quick-ACK mode by itself): a peer that writes twice in a
  // row is not kept waiting for our delayed ACK under Nagle. On after every operation of
  // streams made with quickAck(true).
  void quickAck(bool on) { quickAck_ = on; }
  void close();
  void cancel();
  // The peer closed the connection between commands without close_notify (an SMTP client that
  // drops after its last message): the TLS session stays resumable. OpenSSL otherwise drops a
  // session not shut down from its cache when the SSL is freed. Nothing before a handshake.
  void keepSessionResumable();

 private:
  void ackNow();

  asio::ip::tcp::socket sock_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  daemon::Watchdog watchdog_;
  const OnTimeout how_;
  bool timedOut_ = false;
  bool quickAck_ = false;
};

}  // namespace qtls::net
