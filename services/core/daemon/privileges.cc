// Privilege checks and the drop to the service user.
#include "daemon/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "log/log.h"
#include "util/text.h"

namespace qtls::daemon {

absl::Status checkUser(const std::string& user, const std::string& program,
                       const std::string& example) {
  if (::geteuid() != 0 || !user.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(text::cat(
      "refusing to run as root without --user: files made as root would lock out the service "
      "user; give --user ",
      example, " (", program, " drops to it after opening its sockets), or start it as that user",
      " (--user root keeps root on purpose)"));
}

absl::Status dropPrivileges(const std::string& user, const std::string& stateDir) {
  if (user.empty()) return absl::OkStatus();
  struct passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return absl::InvalidArgumentError(text::cat("--user: no such user: ", user));
  if (pw->pw_uid == 0) {
    log::warn(text::cat("running as root (--user ", user, ")"));
    return absl::OkStatus();
  }
  if (::geteuid() != 0) {
    if (::geteuid() == pw->pw_uid) return absl::OkStatus();
    return absl::FailedPreconditionError(
        text::cat("--user ", user, ": not started as root, cannot become that user"));
  }
  // The state directory may hold files made as root by this start or an earlier one.
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(stateDir, ec))
    if (::lchown(e.path().c_str(), pw->pw_uid, pw->pw_gid) != 0)
      return absl::PermissionDeniedError(text::cat("--user ", user, ": cannot give ",
                                                   e.path().string(),
                                                   " to the user: ", std::strerror(errno)));
  if (::chown(stateDir.c_str(), pw->pw_uid, pw->pw_gid) != 0)
    return absl::PermissionDeniedError(text::cat("--user ", user, ": cannot give ", stateDir,
                                                 " to the user: ", std::strerror(errno)));
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
      setuid(pw->pw_uid) != 0)
    return absl::PermissionDeniedError(
        text::cat("--user ", user, ": cannot drop privileges: ", std::strerror(errno)));
  if (setuid(0) == 0)
    return absl::InternalError(text::cat("--user ", user, ": privileges could be regained"));
  return absl::OkStatus();
}

absl::Status raiseFileLimit(rlim_t need, const std::string& why) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return absl::InternalError(text::cat("getrlimit: ", std::strerror(errno)));
  if (rl.rlim_cur >= need) return absl::OkStatus();
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
    return absl::ResourceExhaustedError(text::cat(
        why, " needs ", need, " open files (3 per connection plus 64), but the hard limit is ",
        rl.rlim_max, ": raise it (LimitNOFILE= in the unit, ulimit -n, softlimit -o) or lower ",
        "--max-connections"));
  rl.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return absl::InternalError(
        text::cat("setrlimit(RLIMIT_NOFILE, ", need, "): ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace qtls::daemon
