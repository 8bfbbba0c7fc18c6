// PeerChain (peer_chain.h).
#include "tls/peer_chain.h"

namespace qtls::tls {

PeerChain PeerChain::of(SSL* ssl) {
  PeerChain c;
  if (ssl == nullptr) return c;
  c.leaf_.reset(SSL_get1_peer_certificate(ssl));
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl))
    c.chain_.reset(X509_chain_up_ref(chain));
  return c;
}

PeerChain::PeerChain(const PeerChain& o) { *this = o; }

PeerChain& PeerChain::operator=(const PeerChain& o) {
  if (this == &o) return *this;
  X509* leaf = o.leaf_.get();
  if (leaf) X509_up_ref(leaf);
  leaf_.reset(leaf);
  chain_.reset(o.chain_ ? X509_chain_up_ref(o.chain_.get()) : nullptr);
  return *this;
}

long PeerChain::verifyAgainst(SSL_CTX* ctx, const char* purpose) const {
  if (!leaf_) return X509_V_ERR_UNSPECIFIED;
  if (ctx == nullptr) return X509_V_ERR_UNSPECIFIED;
  std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>> sctx(
      X509_STORE_CTX_new());
  if (!sctx ||
      X509_STORE_CTX_init(sctx.get(), SSL_CTX_get_cert_store(ctx), leaf_.get(), chain_.get()) != 1)
    return X509_V_ERR_UNSPECIFIED;
  X509_STORE_CTX_set_default(sctx.get(), purpose);
  if (X509_verify_cert(sctx.get()) == 1) return X509_V_OK;
  const int err = X509_STORE_CTX_get_error(sctx.get());
  return err == X509_V_OK ? X509_V_ERR_UNSPECIFIED : err;
}

}  // namespace qtls::tls
