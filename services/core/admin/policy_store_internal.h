// What the policy store's files share among themselves (policy_store.cc: open, commit,
// rollback, audit; policy_disk.cc: the files on disk; policy_validate.cc: item and whole-policy
// checks). Not for use outside the store.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace qtls::admin::internal {

std::string errnoText(const std::string& what, const std::string& path);
absl::Status fsyncDir(const std::string& dir);
std::string dirOf(const std::string& path);
// Temp file in the same directory, fsync, rename over `path`, fsync the directory (unless
// syncDir is false). An existing file's mode and owner carry over; a new file gets `mode`.
absl::Status writeAtomic(const std::string& path, const std::string& data, mode_t mode,
                         bool syncDir = true);
std::string generationPath(const std::string& state, uint64_t gen);
// generations/<N>.keys (hashes of its private-key files), <N>.purged (the ones removed).
std::string sidecarPath(const std::string& state, uint64_t gen, const char* what);
// The file a path names once symlinks in its last component are followed. A policy file in
// control/ may be a link into the daemon's own directory (qtlsctl confine): the store writes
// and removes what the link points at, never the link, so control/ need not be writable.
std::string throughLink(const std::string& path);

}  // namespace qtls::admin::internal
