// Inbound TLS contexts.
#include "tls/server_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <vector>

#include "tls/context_common.h"
#include "tls/errors.h"
#include "util/text.h"

namespace qtls::tls {
namespace {

struct InfoStackFree {
  void operator()(STACK_OF(X509_INFO) * s) const { sk_X509_INFO_pop_free(s, X509_INFO_free); }
};

int onServerName(SSL* ssl, int*, void* arg) {
  auto* contexts = static_cast<ServerContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  auto it = contexts->byName.find(text::lower(name));
  if (it != contexts->byName.end()) SSL_set_SSL_CTX(ssl, it->second.get());
  return SSL_TLSEXT_ERR_OK;
}

// loadCertificateFile's work on any source of PEM; `file` names it in errors.
absl::Status loadCertificates(SSL_CTX* ctx, BIO* bio, const std::string& file) {
  std::unique_ptr<STACK_OF(X509_INFO), InfoStackFree> infos(
      PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr));
  if (!infos)
    return absl::InvalidArgumentError(text::cat("tls: parsing ", file, ": ", drainErrors()));
  std::vector<X509*> certs;
  std::vector<EVP_PKEY*> keys;
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
    if (info->x509) certs.push_back(info->x509);
    if (info->x_pkey && info->x_pkey->dec_pkey) keys.push_back(info->x_pkey->dec_pkey);
  }
  if (certs.empty())
    return absl::InvalidArgumentError(text::cat("tls: ", file, ": no certificate"));
  if (keys.empty()) return absl::InvalidArgumentError(text::cat("tls: ", file, ": no private key"));
  struct Pair {
    X509* leaf;
    EVP_PKEY* key;
    STACK_OF(X509) * chain;
  };
  std::vector<Pair> pairs;
  std::vector<X509*> orphans;  // chain certificates seen before any leaf
  for (X509* c : certs) {
    EVP_PKEY* match = nullptr;
    for (EVP_PKEY* k : keys)
      if (X509_check_private_key(c, k) == 1) match = k;
    ERR_clear_error();
    if (match) {
      pairs.push_back({c, match, sk_X509_new_null()});
    } else if (!pairs.empty()) {
      sk_X509_push(pairs.back().chain, c);
    } else {
      orphans.push_back(c);
    }
  }
  absl::Status status;
  if (pairs.empty())
    status = absl::InvalidArgumentError(
        text::cat("tls: ", file, ": private key does not match any certificate"));
  else if (pairs.size() > 2)
    status = absl::InvalidArgumentError(text::cat("tls: ", file, ": more than two key pairs"));
  for (X509* o : orphans)
    if (status.ok()) sk_X509_push(pairs.front().chain, o);
  for (auto& p : pairs) {
    if (status.ok() && SSL_CTX_use_cert_and_key(ctx, p.leaf, p.key, p.chain, 1) != 1)
      status = absl::InvalidArgumentError(text::cat("tls: loading ", file, ": ", drainErrors()));
    sk_X509_free(p.chain);  // the stack only; certificates belong to infos / ctx (up-ref'd)
  }
  return status;
}

// The CA that client certificates must chain to, from a file or PEM text.
absl::Status loadClientCa(SSL_CTX* ctx, const ServerTlsSpec& spec) {
  if (!spec.clientCaFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, spec.clientCaFile.c_str(), nullptr) != 1)
      return absl::InvalidArgumentError(
          text::cat("tls: loading ", spec.clientCaFile, ": ", drainErrors()));
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(spec.clientCaFile.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    return absl::OkStatus();
  }
  BioPtr bio(BIO_new_mem_buf(spec.clientCaPem.data(), static_cast<int>(spec.clientCaPem.size())));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int cas = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, ca);
    SSL_CTX_add_client_CA(ctx, ca);
    X509_free(ca);
    ++cas;
  }
  ERR_clear_error();  // the end of the text
  if (cas == 0)
    return absl::InvalidArgumentError(text::cat(spec.clientCaName, ": no PEM certificate in it"));
  return absl::OkStatus();
}

}  // namespace

absl::Status loadCertificateFile(SSL_CTX* ctx, const std::string& file) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio)
    return absl::InvalidArgumentError(text::cat("tls: reading ", file, ": ", drainErrors()));
  return loadCertificates(ctx, bio.get(), file);
}

absl::StatusOr<SslCtxSharedPtr> buildServerContext(const ServerTlsSpec& spec) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return absl::InternalError(text::cat("tls: creating context: ", drainErrors()));
  SSL_CTX_set_min_proto_version(ctx.get(), spec.minVersion ? spec.minVersion : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (spec.resumption) {
    // Stateless tickets (OpenSSL's default, keys per context) plus a session cache; the id
    // context is required once client certificates may be requested.
    static const unsigned char kSidCtx[] = "qtls-smtpd";
    SSL_CTX_set_session_id_context(ctx.get(), kSidCtx, sizeof kSidCtx - 1);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  } else {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx.get(), 0);
  }
  if (!spec.certFile.empty()) {
    if (auto s = loadCertificateFile(ctx.get(), spec.certFile); !s.ok()) return s;
  } else {
    BioPtr bio(BIO_new_mem_buf(spec.certPem.data(), static_cast<int>(spec.certPem.size())));
    if (auto s = loadCertificates(ctx.get(), bio.get(), spec.certName); !s.ok()) return s;
  }
  if (spec.ciphers.empty()) {
    // Forward-secret AEAD suites only (Mozilla "intermediate"): no CBC, no static-RSA key
    // exchange. TLS 1.3 keeps OpenSSL's list, which is all AEAD. tlsserverciphers replaces
    // this, so an operator can still widen it for old clients.
    SSL_CTX_set_cipher_list(ctx.get(), kDefaultServerCiphers);
    SSL_CTX_set_dh_auto(ctx.get(), 1);
  } else if (auto s = setCipherString(ctx.get(), spec.ciphers, "tls: server ciphers"); !s.ok()) {
    return s;
  }
  if (spec.clientCaFile.empty() && spec.clientCaPem.empty()) return shareCtx(std::move(ctx));
  if (auto s = loadClientCa(ctx.get(), spec); !s.ok()) return s;
  if (spec.requireClientCert)
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  else
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptForLaterCheck);
  if (!spec.clientCrlFile.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr ||
        X509_load_crl_file(lookup, spec.clientCrlFile.c_str(), X509_FILETYPE_PEM) <= 0)
      return absl::InvalidArgumentError(
          text::cat("tls: loading ", spec.clientCrlFile, ": ", drainErrors()));
    // With a CRL file, every certificate of the chain needs a valid CRL (qmail-tls rule).
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  return shareCtx(std::move(ctx));
}

long long certificateNotAfter(SSL_CTX* ctx) {
  X509* cert = ctx ? SSL_CTX_get0_certificate(ctx) : nullptr;
  struct tm tm;
  if (cert == nullptr || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return -1;
  return static_cast<long long>(timegm(&tm));
}

void ServerContexts::installSniCallback() {
  if (!defaultCtx) return;
  SSL_CTX_set_tlsext_servername_callback(defaultCtx.get(), onServerName);
  SSL_CTX_set_tlsext_servername_arg(defaultCtx.get(), this);
}

}  // namespace qtls::tls
