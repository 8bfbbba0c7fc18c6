// The one builder of server TLS contexts, for the inbound agent and the admin API's TCP front:
// a certificate chain and key (servercert.pem, or PEM text; in either order, one RSA and one
// ECDSA pair at once), per-SNI certificates, cipher lists, minimum version, resumption, and
// client certificates checked against a CA (asked for and judged later, or required in the
// handshake) with optional CRLs.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tls/ssl_ptr.h"

namespace qtls::tls {

// The TLS 1.2 suites offered when control/tlsserverciphers is absent.
inline constexpr char kDefaultServerCiphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

struct ServerTlsSpec {
  // The certificate chain and key: a file (servercert.pem), or else PEM text that errors call
  // `certName` ("--admin-cert and --admin-key").
  std::string certFile;
  std::string certPem, certName;
  std::string ciphers;  // tlsserverciphers joined with ':'; empty = kDefaultServerCiphers
  int minVersion = 0;   // 0 = TLS 1.2
  // The CA of client certificates: a file (clientca.pem), or else PEM text called
  // `clientCaName`; neither = never ask for a client certificate.
  std::string clientCaFile;
  std::string clientCaPem, clientCaName;
  std::string clientCrlFile;  // clientcrl.pem; empty = no revocation checks
  // Asked for and judged later (the agent's relay decision: a client without one still gets
  // a session), or required and verified in the handshake (the admin front).
  bool requireClientCert = false;
  bool resumption = true;  // a session cache and tickets
};

// Loads every certificate/key pair of a PEM file into ctx. Keys are matched to certificates by
// public key; certificates that match no key form the chain of the pair before them (or of the
// first pair when they come first). Errors name the file and the reason.
absl::Status loadCertificateFile(SSL_CTX* ctx, const std::string& file);

// A complete server context.
absl::StatusOr<SslCtxSharedPtr> buildServerContext(const ServerTlsSpec& spec);

// notAfter of the context's certificate as Unix time, or -1 when it has none.
long long certificateNotAfter(SSL_CTX* ctx);

// The default context plus contexts for SNI names; selected by a servername callback.
class ServerContexts {
 public:
  SslCtxSharedPtr defaultCtx;
  std::map<std::string, SslCtxSharedPtr> byName;  // lowercased SNI name

  // Installs the servername callback on defaultCtx (SNI is read from the first context only);
  // `this` must outlive every SSL made from it, which holding the ServerContexts in the
  // snapshot guarantees.
  void installSniCallback();
};

}  // namespace qtls::tls
