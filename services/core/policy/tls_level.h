// Outbound TLS security levels, ordered from weakest to strongest so that "at least encrypt"
// is a plain comparison (the Postfix tls_level habit).
#pragma once

#include <optional>
#include <string_view>

namespace qtls::policy {

enum class TlsLevel {
  kNone = 0,     // never STARTTLS
  kMay,          // STARTTLS when offered, no certificate checks
  kEncrypt,      // TLS required, no certificate checks
  kVerify,       // TLS required, chain and name verified against a CA file
  kFingerprint,  // TLS required, certificate or SPKI SHA-256 pinned
};

std::string_view levelName(TlsLevel level);
std::optional<TlsLevel> parseLevel(std::string_view name);
inline bool tlsRequired(TlsLevel l) { return l >= TlsLevel::kEncrypt; }

}  // namespace qtls::policy
