// The qmail-tls policy files, read once when a snapshot is compiled: which names have
// tlshosts/<fqdn>.pem (with its content), whether tlshosts/exhaustivelist exists, which names
// are in notlshosts/. A delivery asks the snapshot, never the file system, so it cannot see
// one generation's tlspolicy and another's tlshosts/ (docs/compatibility.md says how a hand
// edit takes effect).
#pragma once

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "policy/resolve.h"

namespace qtls::policy {

struct QmailFiles {
  struct Pem {
    std::string content;
    std::string error;  // set when the file exists but could not be read
  };
  std::map<std::string, Pem> tlshosts;  // "<fqdn>" of tlshosts/<fqdn>.pem
  bool exhaustiveList = false;
  std::set<std::string> notlshosts;

  // Reads tlshosts/ and notlshosts/ under `controlDir` (either may be missing). Names that are
  // not plain host names are skipped: a lookup never pastes a DNS name into a path.
  static absl::StatusOr<QmailFiles> read(const std::string& controlDir);

  // The file facts for target `fqdn` ("" for an IP target), for decide().
  Inputs inputs(const std::string& fqdn) const;
  const Pem* pem(const std::string& fqdn) const;
};

}  // namespace qtls::policy
