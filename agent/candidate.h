// Report-only evaluation of a fleet candidate for the inbound agent (docs/rollouts.md, "Report-only
// first"): what the candidate policy would have done with a session that ran under the policy in
// force. The agent's policy decides whether TLS is offered (servercert) and who may relay by client
// certificate (clientca, clientcrl, tlsclients); the session is judged on those.
#pragma once

#include <string>

#include "fleet/verdict.h"
#include "smtpd_config.h"
#include "tls/peer_chain.h"

namespace qtls::agent {

// What one session saw, for the candidate.
struct InboundSeen {
  bool tlsTried = false;  // STARTTLS accepted or an implicit-TLS listener
  bool tlsUp = false;     // the handshake finished
  bool implicit = false;
  // The policy in force let the client relay because of its certificate: the candidate must
  // too, or mail this client relays today would be refused.
  bool relayedByCert = false;
  tls::PeerChain client;  // the client's certificates, when it sent any
};

fleet::Verdict judgeCandidate(const SmtpdConfig& candidate, const std::string& listenerCiphers,
                              const InboundSeen& seen);

}  // namespace qtls::agent
