// Report-only evaluation of a fleet candidate (docs/rollouts.md, "Report-only first"): what the
// candidate policy would have done with a delivery that ran under the policy in force, judged from
// what the dialogue saw of the server (STARTTLS offered, the handshake, the certificate chain).
#pragma once

#include <string>

#include "fleet/verdict.h"
#include "policy/tls_level.h"
#include "remote_config.h"
#include "targets.h"
#include "tls/peer_chain.h"

namespace qtls::remoted {

// What one dialogue saw of the server it talked to; filled in by the dialogue as it goes.
struct Observed {
  bool reached = false;  // the server answered EHLO (or, on port 465, the handshake began)
  Target target;
  bool implicit = false;
  bool starttlsOffered = false;
  bool starttlsRefused = false;  // STARTTLS answered with other than 220
  bool tlsTried = false;         // a handshake was attempted
  bool tlsUp = false;            // and finished
  bool verified = false;         // the peer passed the verify or fingerprint check in force
  tls::PeerChain chain;          // kept under every level, may included
};

fleet::Verdict judgeCandidate(const RemoteConfig& candidate, const std::string& domain,
                              const Observed& seen);

}  // namespace qtls::remoted
