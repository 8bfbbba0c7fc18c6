// Running as the right user. A daemon started as root must be told whom to become (--user):
// files it made as root in its state directory would otherwise lock out the next start as the
// service user (the "cannot open <state>/lock: Permission denied" outage). `--user root` keeps
// root on purpose (tests, containers) and says so in the log.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace qtls::daemon {

// Refuses a root start without --user; `program` and `example` make the message.
absl::Status checkUser(const std::string& user, const std::string& program,
                       const std::string& example);

// Gives `stateDir` (recursively) to `user`, then sets groups, gid and uid, and checks that
// root cannot be regained. Nothing when `user` is empty or root.
absl::Status dropPrivileges(const std::string& user, const std::string& stateDir);

}  // namespace qtls::daemon
