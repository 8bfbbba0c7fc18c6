// Whether a server's certificate passes what a TLS plan asks for (spec 3.3-3.7; docs/policy.md
// for fingerprint): the one place that decides it, for the delivery in progress and for a
// fleet candidate judged report-only against what the delivery saw.
#pragma once

#include <openssl/x509.h>

#include <string>
#include <vector>

#include "plan.h"
#include "policy/tlspolicy_table.h"

namespace qtls::remoted {

struct PeerCheck {
  bool ok = true;
  std::string verify = "none";  // for the log: none, ok, pinned, fail
  // When !ok: a word of qtls_remote_tls_failures_total's reason set (untrusted, expired,
  // no_certificate, pin_mismatch, name_mismatch) and the report's two parts.
  std::string reason, what, err;
};

// `peer`: the server's certificate (null when it sent none); `chainResult`: its chain verified
// against the plan's trust (X509_V_OK when it passed; read only under verify); `ip`: the
// server's address, for the report when the plan has no name.
PeerCheck checkPeer(const TlsPlan& plan, X509* peer, long chainResult, const std::string& ip);

// Pins are SHA-256 digests of the DER certificate or of the DER SubjectPublicKeyInfo.
bool pinMatches(X509* cert, const std::vector<policy::Pin>& pins);

}  // namespace qtls::remoted
