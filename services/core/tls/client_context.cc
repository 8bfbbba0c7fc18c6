// Outbound TLS contexts.
#include "tls/client_context.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls/context_common.h"
#include "tls/errors.h"
#include "tls/session_cache.h"
#include "util/sha256.h"
#include "util/text.h"

namespace qtls::tls {
namespace {

// Loads the certificates and CRLs of a PEM text into the context's trust store; with none in
// it, fails with OpenSSL's own reason, as loading the same text from a file would.
absl::Status loadTrust(SSL_CTX* ctx, const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return absl::InternalError(drainErrors());
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  for (int i = 0; infos != nullptr && i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 != nullptr && X509_STORE_add_cert(store, info->x509) == 1) ++added;
    if (info->crl != nullptr && X509_STORE_add_crl(store, info->crl) == 1) ++added;
  }
  if (infos != nullptr) sk_X509_INFO_pop_free(infos, X509_INFO_free);
  if (added == 0) {
    ERR_clear_error();
    ERR_raise(ERR_LIB_X509, X509_R_NO_CERTIFICATE_OR_CRL_FOUND);
    return absl::FailedPreconditionError(drainErrors());
  }
  return absl::OkStatus();
}

absl::Status applyClientSettings(SSL_CTX* ctx, const std::string& ciphers,
                                 const std::string& clientCertFile) {
  if (auto s = setCipherString(ctx, ciphers, "control/tlsclientciphers"); !s.ok()) return s;
  if (!clientCertFile.empty()) {
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, clientCertFile.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, clientCertFile.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
      return absl::InvalidArgumentError(
          text::cat("tls: loading client certificate ", clientCertFile, ": ", drainErrors()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ClientContextSpec::key() const {
  return text::cat("ca=", caPem.empty() ? "" : text::sha256Hex(caPem), " sys=", systemCa,
                   " min=", minVersion, " ciphers=", ciphers, " cert=", clientCertFile);
}

absl::StatusOr<SslCtxSharedPtr> buildClientContext(const ClientContextSpec& spec) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError(drainErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), spec.minVersion ? spec.minVersion : TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_AUTO_RETRY);
  // qmail-smtpd asks for a client certificate after the handshake under TLS 1.3.
  SSL_CTX_set_post_handshake_auth(ctx.get(), 1);
  if (!spec.caPem.empty()) {
    if (auto s = loadTrust(ctx.get(), spec.caPem); !s.ok()) return s;
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptForLaterCheck);
  } else if (spec.systemCa) {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
      return absl::FailedPreconditionError(drainErrors());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptForLaterCheck);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (auto s = applyClientSettings(ctx.get(), spec.ciphers, spec.clientCertFile); !s.ok()) return s;
  enableClientSessions(ctx.get());
  return shareCtx(std::move(ctx));
}

absl::Status checkClientSettings(const std::string& ciphers, const std::string& clientCertFile) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError(drainErrors());
  return applyClientSettings(ctx.get(), ciphers, clientCertFile);
}

absl::StatusOr<SslCtxSharedPtr> ClientContextBuilder::get(const ClientContextSpec& spec) {
  std::string key = spec.key();
  auto it = contexts_.find(key);
  if (it == contexts_.end()) it = contexts_.emplace(std::move(key), buildClientContext(spec)).first;
  return it->second;
}

}  // namespace qtls::tls
