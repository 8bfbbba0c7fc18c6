// Outbound TLS contexts.
#include "tls/client_context.h"

#include <openssl/err.h>
#include <sys/stat.h>

#include "tls/context_common.h"
#include "tls/errors.h"
#include "util/text.h"

namespace qtls::tls {
namespace {

std::string fileIdentity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return text::cat(st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec);
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
  return text::cat("ca=", caFile, "@", caFile.empty() ? "" : fileIdentity(caFile),
                   " sys=", systemCa, " min=", minVersion, " ciphers=", ciphers,
                   " cert=", clientCertFile, "@",
                   clientCertFile.empty() ? "" : fileIdentity(clientCertFile));
}

absl::StatusOr<SslCtxSharedPtr> buildClientContext(const ClientContextSpec& spec) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError(drainErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), spec.minVersion ? spec.minVersion : TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_AUTO_RETRY);
  // qmail-smtpd asks for a client certificate after the handshake under TLS 1.3.
  SSL_CTX_set_post_handshake_auth(ctx.get(), 1);
  if (!spec.caFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), spec.caFile.c_str(), nullptr) != 1) {
      std::string err = drainErrors();
      return absl::FailedPreconditionError(err);
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptForLaterCheck);
  } else if (spec.systemCa) {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
      return absl::FailedPreconditionError(drainErrors());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptForLaterCheck);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (auto s = applyClientSettings(ctx.get(), spec.ciphers, spec.clientCertFile); !s.ok()) return s;
  return shareCtx(std::move(ctx));
}

absl::Status checkClientSettings(const std::string& ciphers, const std::string& clientCertFile) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError(drainErrors());
  return applyClientSettings(ctx.get(), ciphers, clientCertFile);
}

absl::StatusOr<SslCtxSharedPtr> ClientContextCache::get(const ClientContextSpec& spec) {
  std::string key = spec.key();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = contexts_.find(key); it != contexts_.end()) return it->second;
  }
  // Built without the lock held; two deliveries racing here build twice, harmlessly.
  auto ctx = buildClientContext(spec);
  if (!ctx.ok()) return ctx.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (contexts_.size() > 256) contexts_.clear();  // bounds growth from replaced CA files
  contexts_.emplace(key, *ctx);
  return *ctx;
}

}  // namespace qtls::tls
