// Running as the right user. A daemon started as root must be told whom to become (--user):
// files it made as root in its state directory would otherwise lock out the next start as the
// service user (the "cannot open <state>/lock: Permission denied" outage). `--user root` keeps
// root on purpose (tests, containers) and says so in the log.
#pragma once

#include <sys/resource.h>

#include <string>

#include "absl/status/status.h"

namespace qtls::daemon {

// Refuses a root start without --user; `program` and `example` make the message.
absl::Status checkUser(const std::string& user, const std::string& program,
                       const std::string& example);

// Gives `stateDir` (recursively) to `user`, then sets groups, gid and uid, and checks that
// root cannot be regained. Nothing when `user` is empty or root.
absl::Status dropPrivileges(const std::string& user, const std::string& stateDir);

// Raises the soft RLIMIT_NOFILE to at least `need` descriptors (up to the hard limit); refuses
// when the hard limit is lower, naming `why` and how to raise it, instead of failing accept()
// with "Too many open files" under load.
absl::Status raiseFileLimit(rlim_t need, const std::string& why);

}  // namespace qtls::daemon
