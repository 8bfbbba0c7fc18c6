// judgeCandidate (candidate.h). The certificate rule is checkClientCertificate, the very code
// that decides relaying; the chain is verified against the candidate's client CA and CRL.
#include "candidate.h"

#include "relay.h"

namespace qtls::agent {

using fleet::Verdict;

fleet::Verdict judgeCandidate(const SmtpdConfig& candidate, const std::string& listenerCiphers,
                              const InboundSeen& seen) {
  if (!seen.tlsTried) return Verdict::kPass;  // plain text: no policy of ours was involved
  if (!seen.tlsUp) return Verdict::kNotEvaluated;
  const tls::ServerContexts* contexts = candidate.tlsFor(listenerCiphers);
  // Without a server certificate the candidate offers no STARTTLS (plain text instead) and an
  // implicit-TLS listener cannot serve at all.
  if (contexts == nullptr || !contexts->defaultCtx)
    return seen.implicit ? Verdict::kValidationFailure : Verdict::kDowngrade;
  if (!seen.relayedByCert) return Verdict::kPass;
  if (!candidate.certRelay) return Verdict::kValidationFailure;  // it relays by certificate no more
  const long chain = seen.client.verifyAgainst(contexts->defaultCtx.get(), "ssl_client");
  const CertDecision d = checkClientCertificate(seen.client.leaf(), chain, candidate.tlsclients);
  if (d.allowed) return Verdict::kPass;
  if (chain == X509_V_ERR_CERT_HAS_EXPIRED) return Verdict::kCertificateExpired;
  if (chain != X509_V_OK) return Verdict::kCertificateNotTrusted;
  return Verdict::kValidationFailure;  // no email address, or not in tlsclients
}

}  // namespace qtls::agent
