// Whether a server's certificate passes what a TLS plan asks for (spec 3.3-3.7; docs/policy.md
// for fingerprint): the one place that decides it, for the delivery in progress and for a
// fleet candidate judged report-only against what the delivery saw.
#pragma once

#include <openssl/x509.h>

#include <string>
#include <vector>

#include "outcome.h"
#include "plan.h"
#include "policy/tlspolicy_table.h"

namespace qtls::remoted {

struct PeerCheck {
  bool ok = true;
  std::string verify = "none";  // for the log: none, ok, pinned, fail
  // When !ok: the failure table's row (kPeer*) and what its text names: `arg` the CA file or
  // the server's name, `err` the chain's error, `detail` the name the certificate has, `line`
  // the tlspolicy line of the pins.
  Failure failure = Failure::kNone;
  std::string arg, err, detail;
  long line = 0;
  // qtls_remote_tls_failures_total's reason word, as the table gives it.
  std::string_view reason() const { return rowOf(failure).reason; }
};

// `peer`: the server's certificate (null when it sent none); `chainResult`: its chain verified
// against the plan's trust (X509_V_OK when it passed; read only under verify); `ip`: the
// server's address, for the report when the plan has no name.
PeerCheck checkPeer(const TlsPlan& plan, X509* peer, long chainResult, const std::string& ip);

// Pins are SHA-256 digests of the DER certificate or of the DER SubjectPublicKeyInfo.
bool pinMatches(X509* cert, const std::vector<policy::Pin>& pins);

}  // namespace qtls::remoted
