// One outbound SMTP connection: TCP with TCP_NODELAY, buffered reply reading, per-operation
// timeouts (timeoutremote bounds each read, each write and the TLS handshake), and STARTTLS
// or implicit TLS over OpenSSL.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>

#include "daemon/watchdog.h"
#include "smtp/reply.h"
#include "tls/ssl_ptr.h"

namespace qtls::remoted {

class SmtpConn : public std::enable_shared_from_this<SmtpConn> {
 public:
  explicit SmtpConn(asio::any_io_executor ex);
  ~SmtpConn();

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
  bool timedOut() const { return timedOut_; }

  // Polite close in the background: QUIT, wait briefly for its reply, TLS close_notify.
  asio::awaitable<void> quit();
  void close();

 private:
  asio::awaitable<std::size_t> readSome(char* p, size_t n, std::error_code& ec);
  void arm();
  void disarm();

  asio::ip::tcp::socket sock_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  daemon::Watchdog watchdog_;
  std::chrono::seconds timeout_{1200};
  std::string buf_;  // received, not yet parsed
  bool timedOut_ = false;
};

}  // namespace qtls::remoted
