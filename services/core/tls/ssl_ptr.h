// One owner for every OpenSSL object: unique_ptr aliases with stateless deleters.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace qtls::tls {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;

inline void freeGeneralNames(GENERAL_NAMES* g) { GENERAL_NAMES_free(g); }
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, freeGeneralNames>>;

// Shared SSL_CTX, for contexts that policy snapshots and live connections both hold.
using SslCtxSharedPtr = std::shared_ptr<SSL_CTX>;
inline SslCtxSharedPtr shareCtx(SslCtxPtr ctx) {
  return SslCtxSharedPtr(ctx.release(), SSL_CTX_free);
}

}  // namespace qtls::tls
