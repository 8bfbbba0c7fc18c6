// Running as the right user. A daemon started as root must be told whom to become (--user):
// files it made as root in its state directory would otherwise lock out the next start as the
// service user (the "cannot open <state>/lock: Permission denied" outage). `--user root` keeps
// root on purpose (tests, containers) and says so in the log.
//
// A daemon started as root reads and writes its policy and state as the service user, always:
// at start (asServiceUser around PolicyStore::open), at every SIGHUP and API change (after the
// drop). So a key the service user cannot read refuses the start, with the file named, instead
// of starting and then failing every reload; and root needs no capability to read other users'
// files (the units' bounding sets have no CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH). Root keeps
// only what only root can do: bind, make the admin socket in a root directory, chown.
#pragma once

#include <sys/resource.h>

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace qtls::daemon {

// Refuses a root start without --user; `program` and `example` make the message.
absl::Status checkUser(const std::string& user, const std::string& program,
                       const std::string& example);

// As root: makes `stateDir` if missing (mode 0700) and gives it, and everything in it that
// another user owns, to `user`. Works without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: what root
// may not enter is skipped (it is not root's), and nothing is chowned until the walk is over,
// so the walk never locks itself out. Nothing when `user` is empty or root, or when not root.
absl::Status adoptStateDir(const std::string& user, const std::string& stateDir);

// Runs `body` with the effective uid, gid and groups of `user`, then returns to root (only the
// effective ids change; the real and saved uid stay root). When `user` is empty or root, or
// when not root, `body` simply runs.
absl::Status asServiceUser(const std::string& user, const std::function<absl::Status()>& body);

// Sets groups, gid and uid to `user` for good, then checks that root cannot be regained.
// Nothing when `user` is empty or root.
absl::Status dropPrivileges(const std::string& user);

// Raises the soft RLIMIT_NOFILE to at least `need` descriptors (up to the hard limit); refuses
// when the hard limit is lower, naming `why` and how to raise it, instead of failing accept()
// with "Too many open files" under load.
absl::Status raiseFileLimit(rlim_t need, const std::string& why);

}  // namespace qtls::daemon
