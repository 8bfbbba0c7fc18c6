// Names of the TLS levels, as written in control/tlspolicy and in logs.
#include "policy/tls_level.h"

namespace qtls::policy {

std::string_view levelName(TlsLevel level) {
  switch (level) {
    case TlsLevel::kNone:
      return "none";
    case TlsLevel::kMay:
      return "may";
    case TlsLevel::kEncrypt:
      return "encrypt";
    case TlsLevel::kVerify:
      return "verify";
    case TlsLevel::kFingerprint:
      return "fingerprint";
  }
  return "none";
}

std::optional<TlsLevel> parseLevel(std::string_view name) {
  for (TlsLevel l : {TlsLevel::kNone, TlsLevel::kMay, TlsLevel::kEncrypt, TlsLevel::kVerify,
                     TlsLevel::kFingerprint})
    if (levelName(l) == name) return l;
  return std::nullopt;
}

}  // namespace qtls::policy
