// What establishing an outbound connection decided and saw (relay, levels, TLS facts, the
// server's chain, its extensions): kept with the connection in the cache, so a delivery that
// reuses it logs and reports exactly what a fresh one would have.
#pragma once

#include <string>

#include "candidate.h"

namespace qtls::remoted {

struct ConnFacts {
  std::string relay, ip;
  std::string levelRequested = "-", levelAchieved = "none", tlsVersion = "-", cipher = "-",
              verify = "-", policySource = "-";
  bool resumed = false;     // its TLS handshake resumed a session
  bool pipelining = false;  // the server offered PIPELINING (RFC 2920) in its last EHLO
  Observed seen;            // for a report-only candidate
};

}  // namespace qtls::remoted
