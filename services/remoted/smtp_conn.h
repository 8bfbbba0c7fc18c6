// One outbound SMTP connection: TCP with TCP_NODELAY, buffered reply reading, per-operation
// timeouts (timeoutremote bounds each read, each write and the TLS handshake), and STARTTLS
// or implicit TLS over OpenSSL.
//
// A connection lives on its own strand (executor()), made when it is: it may serve several
// deliveries one after the other (the connection cache), so every operation on it runs in a
// coroutine spawned on that strand, never on a delivery's (onConn()).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>

#include "net/smtp_stream.h"
#include "smtp/reply.h"
#include "tls/ssl_ptr.h"

namespace qtls::remoted {

class SmtpConn : public std::enable_shared_from_this<SmtpConn> {
 public:
  explicit SmtpConn(asio::any_io_executor ex);
  ~SmtpConn();

  asio::any_io_executor executor() { return stream_.executor(); }
  net::SmtpStream& stream() { return stream_; }
  // Takes a connected stream socket (tests: one end of a socketpair) instead of connect().
  std::error_code adopt(int fd);
  // TCP_QUICKACK after each read (the default): the server is never left waiting for our
  // delayed ACK (a Nagle stall of ~40 ms after its TLS session tickets). Off only to measure.
  static void setQuickAck(bool on);
  asio::awaitable<std::error_code> connect(const asio::ip::tcp::endpoint& ep,
                                           std::chrono::seconds timeout);
  void setTimeout(std::chrono::seconds t) { timeout_ = t; }

  // Writes all of `data` in one go (each command and the end of DATA leave in one write).
  asio::awaitable<std::error_code> write(std::string_view data);

  struct ReadResult {
    std::error_code ec;         // I/O error, timeout or EOF
    std::string protocolError;  // malformed reply
    smtp::Reply reply;
    bool ok() const { return !ec && protocolError.empty(); }
  };
  asio::awaitable<ReadResult> readReply();

  // Starts TLS on the connection with `ssl` (ownership passes here). Bytes the server sent
  // before the handshake and that are still buffered are discarded first: they were not
  // protected by TLS and must never be read as a reply (reply injection); their count is
  // returned through `discarded`.
  asio::awaitable<std::error_code> handshake(tls::SslPtr ssl, size_t& discarded);
  SSL* ssl() const;
  // Bytes received after the last reply and not yet read: a server that answers a command we
  // did not send (we never pipeline) is breaking the protocol.
  size_t buffered() const { return buf_.size(); }
  // buffered() plus what has arrived since and waits in the socket (plain text) or in
  // OpenSSL's buffer (TLS): checked before each command is sent.
  size_t unread();
  bool timedOut() const { return stream_.timedOut(); }
  // An idle connection still fit for another transaction: open, nothing buffered, and nothing
  // (no 421, no close, no stray TLS record) waiting in the socket.
  bool idleFit();
  // Kept with the connection for as long as its SSL lives (the TLS session cache's binding).
  std::shared_ptr<void> sslBinding;

  // Polite close: QUIT, wait briefly for its reply, TLS close_notify. On the connection's
  // strand; quitDetached() spawns it there.
  asio::awaitable<void> quit();
  static void quitDetached(std::shared_ptr<SmtpConn> conn);
  // QUITs started by quitDetached() and not finished: the stop drain waits for them too.
  static int quitsInFlight();
  // Closes the socket; from any thread (posted to the strand).
  static void closeFromOutside(std::shared_ptr<SmtpConn> conn);
  void close();

 private:
  // One operation under the per-operation deadline; a timeout makes `ec` timed_out.
  void arm() { stream_.arm(weak_from_this(), timeout_); }
  void disarm() { stream_.disarm(); }

  net::SmtpStream stream_;
  std::chrono::seconds timeout_{1200};
  std::string buf_;  // received, not yet parsed
};

// Runs `work` on the connection's strand and awaits it from the caller's.
template <typename T>
asio::awaitable<T> onConn(const std::shared_ptr<SmtpConn>& conn, asio::awaitable<T> work) {
  co_return co_await asio::co_spawn(conn->executor(), std::move(work), asio::use_awaitable);
}

}  // namespace qtls::remoted
