// The outbound configuration snapshot: qmail control files plus control/tlspolicy, loaded
// and validated whole, then published by swapping a shared_ptr. A delivery keeps the snapshot
// it started with. Presence of tlshosts/ and notlshosts/ files is checked per delivery with
// stat(), as qmail-tls does, so creating such a file takes effect without a reload.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "control/smtproutes.h"
#include "policy/tlspolicy_table.h"
#include "tls/client_context.h"

namespace qtls::remoted {

struct RemoteConfig {
  std::string home;        // qmail home, e.g. /var/qmail
  std::string controlDir;  // home + "/control"
  std::string helohost;
  control::SmtpRoutes routes;
  long timeoutConnect = 60;
  long timeoutRemote = 1200;
  policy::TlsPolicyTable tlspolicy;
  std::string ciphers;     // tlsclientciphers lines joined with ':'; empty = default
  std::string clientCert;  // control/clientcert.pem when it exists
  uint64_t generation = 0;
  mutable tls::ClientContextCache contexts;
};
using RemoteConfigConstSharedPtr = std::shared_ptr<const RemoteConfig>;

// Loads and validates everything; any error names the file and the reason.
absl::StatusOr<std::shared_ptr<RemoteConfig>> loadRemoteConfig(const std::string& home);

class ConfigStore {
 public:
  RemoteConfigConstSharedPtr current() const;
  // Loads a new snapshot with the given policy generation (admin/policy_store.h); on error
  // the current one stays and the error is returned.
  absl::Status reload(const std::string& home, uint64_t generation);

 private:
  mutable std::mutex mu_;
  RemoteConfigConstSharedPtr current_;
};

}  // namespace qtls::remoted
