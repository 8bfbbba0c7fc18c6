// The admin API's listeners made ready before the gRPC server starts: a Unix socket's path
// checked and a stale socket removed, the mutual-TLS front for TCP built from the flags' files,
// the sockets opened to the operator's group once they exist.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qtls::admin {

struct AdminOptions;
class TlsFront;

// Identity (certificate CN or DNS/e-mail SAN) -> may write.
using AllowList = std::map<std::string, bool>;
absl::StatusOr<AllowList> loadAllowList(const std::string& path);

// "unix:/run/qtls/admin.sock" (or "unix:///...") -> the path, once its directory exists and
// nothing else serves on it; a socket left by an earlier run is removed.
absl::StatusOr<std::string> prepareUnixSocket(const std::string& listen);

// The TCP front for `listen`: refused unless every mutual-TLS flag is given.
absl::StatusOr<std::unique_ptr<TlsFront>> makeTlsFront(const AdminOptions& o,
                                                       const std::string& listen);

// Gives the sockets to `group` (by name, gid `gid`) and opens them to it: 0600 -> 0660. Nothing
// when no group was named.
absl::Status openToGroup(const std::vector<std::string>& paths, const std::string& group,
                         gid_t gid);

}  // namespace qtls::admin
