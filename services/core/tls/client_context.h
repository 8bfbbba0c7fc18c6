// Client SSL_CTX building for outbound SMTP, and a cache so that a daemon pays OpenSSL's
// context set-up (CA parsing, cipher lists) once per policy instead of once per delivery.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "tls/ssl_ptr.h"

namespace qtls::tls {

struct ClientContextSpec {
  // Trust anchors: caFile if set, else the system store if systemCa, else none (no checks).
  std::string caFile;
  bool systemCa = false;
  int minVersion = 0;          // 0 = TLS 1.2
  std::string ciphers;         // OpenSSL cipher string for TLS <= 1.2 and 1.3; empty = default
  std::string clientCertFile;  // certificate chain + key in one PEM file; empty = none

  std::string key() const;
};

// Errors: FailedPrecondition when the CA file cannot be loaded (the message is the OpenSSL
// reason), InvalidArgument for a bad cipher string or client certificate, Internal otherwise.
// The handshake never fails on verification: callers check SSL_get_verify_result afterwards,
// so every failure gets its own report text.
absl::StatusOr<SslCtxSharedPtr> buildClientContext(const ClientContextSpec& spec);

// Validates a cipher string and a client certificate file without keeping the context.
absl::Status checkClientSettings(const std::string& ciphers, const std::string& clientCertFile);

class ClientContextCache {
 public:
  // Returns the cached context for `spec`, building it on first use. A CA file is identified
  // by path, inode, size and mtime, so replacing it takes effect on the next delivery.
  absl::StatusOr<SslCtxSharedPtr> get(const ClientContextSpec& spec);

 private:
  std::mutex mu_;
  std::map<std::string, SslCtxSharedPtr> contexts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qtls::tls
