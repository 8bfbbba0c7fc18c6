// A client-side TLS session cache for outbound connections: the sessions (TLS 1.3 tickets,
// TLS 1.2 sessions) a server gave us, kept under the key of what decided the connection's
// security plus the server's name and port, several per key, each used once (RFC 8446 C.4),
// dropped when their lifetime is over. A resumed handshake keeps the verification result of
// the full handshake that made the session (OpenSSL carries it in the session), and the peer
// certificate is checked again by the caller as on a full one.
//
// Thread-safe. Contexts must be made with enableClientSessions() for the sessions to arrive.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace qtls::tls {

inline void freeSession(SSL_SESSION* s) { SSL_SESSION_free(s); }
using SslSessionPtr = std::unique_ptr<SSL_SESSION, decltype(&freeSession)>;

class ClientSessionCache {
 public:
  explicit ClientSessionCache(size_t perKey = 4, size_t maxKeys = 10000)
      : perKey_(perKey), maxKeys_(maxKeys) {}
  ~ClientSessionCache();
  ClientSessionCache(const ClientSessionCache&) = delete;
  ClientSessionCache& operator=(const ClientSessionCache&) = delete;

  // A session for `key` that can still be resumed, taken out of the cache; null when none.
  SslSessionPtr take(const std::string& key);
  // Sessions the server sends on `ssl` from now on are kept under `key`. The returned
  // binding must live as long as `ssl` (SmtpConn::sslBinding).
  std::shared_ptr<void> bind(SSL* ssl, const std::string& key);
  size_t size() const;

  void put(const std::string& key, SSL_SESSION* s);  // takes a reference of its own

 private:
  const size_t perKey_, maxKeys_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<SSL_SESSION*>> sessions_;
  std::deque<std::string> order_;  // keys, oldest first, to bound maxKeys
};

// Client-side session caching on `ctx` (external store: the callback hands each new session
// to the ClientSessionCache its SSL is bound to).
void enableClientSessions(SSL_CTX* ctx);

}  // namespace qtls::tls
