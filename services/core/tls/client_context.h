// Client SSL_CTX building for outbound SMTP, and the set of contexts a policy snapshot needs,
// built when the snapshot is compiled: a delivery pays no CA parsing or context set-up, and
// one context serves every destination with the same trust content.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "tls/ssl_ptr.h"

namespace qtls::tls {

struct ClientContextSpec {
  // Trust anchors: the PEM certificates (and CRLs) in caPem if set, else the system store if
  // systemCa, else none (no checks).
  std::string caPem;
  bool systemCa = false;
  int minVersion = 0;          // 0 = TLS 1.2
  std::string ciphers;         // OpenSSL cipher string for TLS <= 1.2 and 1.3; empty = default
  std::string clientCertFile;  // certificate chain + key in one PEM file; empty = none

  // Identifies the context: the CA by the SHA-256 of its content.
  std::string key() const;
};

// Errors: FailedPrecondition when the CA file cannot be loaded (the message is the OpenSSL
// reason), InvalidArgument for a bad cipher string or client certificate, Internal otherwise.
// The handshake never fails on verification: callers check SSL_get_verify_result afterwards,
// so every failure gets its own report text.
absl::StatusOr<SslCtxSharedPtr> buildClientContext(const ClientContextSpec& spec);

// Validates a cipher string and a client certificate file without keeping the context.
absl::Status checkClientSettings(const std::string& ciphers, const std::string& clientCertFile);

// Builds the contexts a snapshot needs while it is compiled, one per distinct spec (trust
// content, version, ciphers, client certificate): the same CA bundle under twenty tlshosts
// names makes one context.
class ClientContextBuilder {
 public:
  // The context for `spec` (built now, or the one already built), or why it cannot be built.
  absl::StatusOr<SslCtxSharedPtr> get(const ClientContextSpec& spec);
  size_t size() const { return contexts_.size(); }

 private:
  std::map<std::string, absl::StatusOr<SslCtxSharedPtr>> contexts_;
};

}  // namespace qtls::tls
