// The outbound configuration snapshot: qmail control files, the tlshosts/ and notlshosts/
// names, every CA the policy names (tlshosts/<fqdn>.pem, tlspolicy ca=) and a TLS context per
// distinct trust content, compiled whole and published by swapping a shared_ptr. A delivery
// keeps the snapshot it started with and reads nothing else: no stat() or parse of policy
// files on its path.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "control/smtproutes.h"
#include "policy/qmail_files.h"
#include "policy/tlspolicy_table.h"
#include "tls/client_context.h"
#include "util/snapshot_store.h"

namespace qtls::remoted {

struct RemoteConfig {
  // Not copyable: entryContexts is keyed by addresses inside `tlspolicy`.
  RemoteConfig() = default;
  RemoteConfig(const RemoteConfig&) = delete;
  RemoteConfig& operator=(const RemoteConfig&) = delete;

  std::string home;        // qmail home, e.g. /var/qmail
  std::string controlDir;  // home + "/control"
  std::string helohost;
  control::SmtpRoutes routes;
  long timeoutConnect = 60;
  long timeoutRemote = 1200;
  policy::TlsPolicyTable tlspolicy;
  std::string ciphers;     // tlsclientciphers lines joined with ':'; empty = default
  std::string clientCert;  // control/clientcert.pem when it exists
  policy::QmailFiles files;
  uint64_t generation = 0;  // of the policy this was compiled from
  std::string digest;       // "sha256:..." of that policy's content

  // Loaded from a private copy of control/ (the policy store compiles each generation from
  // one): names the live qmail home in everything the snapshot reports.
  void rebase(const std::string& liveHome);

  // Compiled TLS contexts: no CA (may, encrypt, fingerprint, none), per tlshosts name, per
  // tlspolicy entry. A tlshosts file that cannot be used keeps its reason, reported (Z) by
  // the deliveries that need it, as qmail-tls does.
  using Ctx = absl::StatusOr<tls::SslCtxSharedPtr>;
  Ctx plainContext = absl::UnavailableError("not compiled");
  std::map<std::string, Ctx> tlshostsContexts;
  std::map<const policy::TableEntry*, Ctx> entryContexts;
};
using RemoteConfigConstSharedPtr = std::shared_ptr<const RemoteConfig>;

// Loads and validates everything; any error names the file and the reason.
absl::StatusOr<std::shared_ptr<RemoteConfig>> loadRemoteConfig(const std::string& home);

using ConfigStore = SnapshotStore<RemoteConfig>;

}  // namespace qtls::remoted
