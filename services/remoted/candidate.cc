// judgeCandidate (candidate.h). The candidate's plan for the same domain and server is made
// by makePlan and its certificate checks by checkPeer: the very code that would enforce it.
#include "candidate.h"

#include "peer_check.h"
#include "plan.h"

namespace qtls::remoted {

using fleet::Verdict;
using policy::TlsLevel;

fleet::Verdict judgeCandidate(const RemoteConfig& candidate, const std::string& domain,
                              const Observed& seen) {
  if (!seen.reached) return Verdict::kNotEvaluated;
  const TlsPlan plan = makePlan(candidate, domain, seen.target);
  const TlsLevel level = plan.decision.level;
  if (!seen.implicit && !policy::tlsRequired(level)) {
    // none or may never refuse; they may protect less than the session was protected.
    if (level == TlsLevel::kNone && seen.tlsUp) return Verdict::kDowngrade;
    return seen.verified ? Verdict::kDowngrade : Verdict::kPass;
  }
  if (!seen.implicit && !seen.starttlsOffered) return Verdict::kStarttlsNotSupported;
  if (seen.starttlsRefused) return Verdict::kStarttlsNotSupported;
  if (!seen.tlsUp) return seen.tlsTried ? Verdict::kValidationFailure : Verdict::kNotEvaluated;
  if (level != TlsLevel::kVerify && level != TlsLevel::kFingerprint)
    return seen.verified ? Verdict::kDowngrade : Verdict::kPass;
  if (!plan.context.ok()) return Verdict::kValidationFailure;  // its CA cannot be loaded
  const long chain = level == TlsLevel::kVerify
                         ? seen.chain.verifyAgainst(plan.context->get(), "ssl_server")
                         : X509_V_OK;
  const PeerCheck c = checkPeer(plan, seen.chain.leaf(), chain, seen.target.address.to_string());
  if (c.ok) return Verdict::kPass;
  if (c.reason() == "expired") return Verdict::kCertificateExpired;
  if (c.reason() == "untrusted") return Verdict::kCertificateNotTrusted;
  if (c.reason() == "name_mismatch") return Verdict::kCertificateHostMismatch;
  return Verdict::kValidationFailure;  // pin_mismatch, no_certificate
}

}  // namespace qtls::remoted
