// Report-only verdicts: what a candidate policy would have done with a session that ran under
// the policy in force (docs/rollouts.md, "Report-only first"). The failure names are RFC 8460's
// result types; "downgrade" (the candidate would protect the session less than it was) and
// "not-evaluated" (the session never reached the point the candidate could be judged on) are
// ours. A closed set: it labels a metric.
#pragma once

#include <string_view>

namespace qtls::fleet {

enum class Verdict {
  kPass,
  kDowngrade,
  kStarttlsNotSupported,
  kCertificateHostMismatch,
  kCertificateExpired,
  kCertificateNotTrusted,
  kValidationFailure,
  kNotEvaluated,
};

inline constexpr Verdict kVerdicts[] = {
    Verdict::kPass,
    Verdict::kDowngrade,
    Verdict::kStarttlsNotSupported,
    Verdict::kCertificateHostMismatch,
    Verdict::kCertificateExpired,
    Verdict::kCertificateNotTrusted,
    Verdict::kValidationFailure,
    Verdict::kNotEvaluated,
};

inline std::string_view verdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kDowngrade:
      return "downgrade";
    case Verdict::kStarttlsNotSupported:
      return "starttls-not-supported";
    case Verdict::kCertificateHostMismatch:
      return "certificate-host-mismatch";
    case Verdict::kCertificateExpired:
      return "certificate-expired";
    case Verdict::kCertificateNotTrusted:
      return "certificate-not-trusted";
    case Verdict::kValidationFailure:
      return "validation-failure";
    case Verdict::kNotEvaluated:
      return "not-evaluated";
  }
  return "not-evaluated";
}

// The verdicts under which the candidate would have refused the session (deferred the mail).
inline bool wouldFail(Verdict v) {
  return v != Verdict::kPass && v != Verdict::kDowngrade && v != Verdict::kNotEvaluated;
}

}  // namespace qtls::fleet
