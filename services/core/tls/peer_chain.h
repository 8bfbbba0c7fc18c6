// A peer's certificates kept after the handshake, to be judged again later against other
// trust than the one the connection was made with (a fleet candidate, report-only).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <utility>

#include "tls/ssl_ptr.h"

namespace qtls::tls {

inline void freeCertStack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using CertStackPtr = std::unique_ptr<STACK_OF(X509), Deleter<STACK_OF(X509), freeCertStack>>;

class PeerChain {
 public:
  PeerChain() = default;
  PeerChain(X509Ptr leaf, CertStackPtr chain) : leaf_(std::move(leaf)), chain_(std::move(chain)) {}
  // Copies share the certificates (reference counts).
  PeerChain(const PeerChain& o);
  PeerChain& operator=(const PeerChain& o);
  PeerChain(PeerChain&&) = default;
  PeerChain& operator=(PeerChain&&) = default;
  // What the peer of a finished handshake sent: its certificate and the chain.
  static PeerChain of(SSL* ssl);

  X509* leaf() const { return leaf_.get(); }
  bool empty() const { return !leaf_; }
  // The chain verified against `ctx`'s trust store as a handshake with `ctx` would verify it:
  // X509_V_OK, or the X509_V_ERR_* code. `purpose`: "ssl_server" for a server's certificate,
  // "ssl_client" for a client's.
  long verifyAgainst(SSL_CTX* ctx, const char* purpose) const;

 private:
  X509Ptr leaf_;
  CertStackPtr chain_;  // untrusted intermediates as sent (a client's SSL includes the leaf)
};

}  // namespace qtls::tls
