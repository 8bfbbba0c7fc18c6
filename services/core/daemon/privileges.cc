// Privilege checks and the drop to the service user.
#include "daemon/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
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

namespace {

struct Account {
  std::string name;  // a copy: getpwnam's buffer is overwritten by the next lookup
  uid_t pw_uid;
  gid_t pw_gid;
};

// The user a root start becomes; nothing to do (nullopt) when `user` is empty or root, or when
// the daemon was not started as root.
absl::StatusOr<std::optional<Account>> serviceUser(const std::string& user) {
  if (user.empty() || ::geteuid() != 0) return std::optional<Account>();
  struct passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return absl::InvalidArgumentError(text::cat("--user: no such user: ", user));
  if (pw->pw_uid == 0) return std::optional<Account>();
  return std::optional<Account>(Account{pw->pw_name, pw->pw_uid, pw->pw_gid});
}

}  // namespace

absl::Status adoptStateDir(const std::string& user, const std::string& stateDir) {
  auto pw = serviceUser(user);
  if (!pw.ok()) return pw.status();
  if (!*pw) return absl::OkStatus();
  const uid_t uid = (*pw)->pw_uid;
  const gid_t gid = (*pw)->pw_gid;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::create_directories(stateDir, ec); ec)
    return absl::PermissionDeniedError(
        text::cat("--user ", user, ": cannot create ", stateDir, ": ", ec.message()));
  // Before the chown, while root owns it (no CAP_FOWNER under the units); once the user's,
  // PolicyStore::open keeps it 0700.
  struct stat top;
  if (::stat(stateDir.c_str(), &top) == 0 && top.st_uid != uid &&
      ::chmod(stateDir.c_str(), 0700) != 0)
    return absl::PermissionDeniedError(
        text::cat("--user ", user, ": chmod 0700 ", stateDir, ": ", std::strerror(errno)));
  // Walk first, chown after: a directory given to the user mode 0700 is closed to a root that
  // has no CAP_DAC_READ_SEARCH. What root cannot enter is not root's, so nothing in it was made
  // by an earlier root run of ours.
  std::vector<std::string> foreign;
  fs::recursive_directory_iterator it(stateDir, fs::directory_options::skip_permission_denied, ec);
  for (const fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && st.st_uid != uid)
      foreign.push_back(it->path().string());
  }
  if (ec)
    return absl::PermissionDeniedError(
        text::cat("--user ", user, ": cannot read ", stateDir, ": ", ec.message()));
  foreign.insert(foreign.begin(), stateDir);
  for (auto p = foreign.rbegin(); p != foreign.rend(); ++p)  // children before their parents
    if (::lchown(p->c_str(), uid, gid) != 0)
      return absl::PermissionDeniedError(
          text::cat("--user ", user, ": cannot give ", *p, " to the user: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status asServiceUser(const std::string& user, const std::function<absl::Status()>& body) {
  auto pw = serviceUser(user);
  if (!pw.ok()) return pw.status();
  if (!*pw) return body();
  std::vector<gid_t> groups(static_cast<size_t>(std::max(::getgroups(0, nullptr), 0)));
  if (::getgroups(static_cast<int>(groups.size()), groups.data()) < 0)
    return absl::InternalError(text::cat("getgroups: ", std::strerror(errno)));
  if (initgroups((*pw)->name.c_str(), (*pw)->pw_gid) != 0 || ::setegid((*pw)->pw_gid) != 0 ||
      ::seteuid((*pw)->pw_uid) != 0) {
    const int err = errno;
    (void)!::seteuid(0);
    (void)!::setegid(0);
    (void)!::setgroups(groups.size(), groups.data());
    return absl::PermissionDeniedError(
        text::cat("--user ", user, ": cannot act as the user: ", std::strerror(err)));
  }
  absl::Status s = body();
  if (::seteuid(0) != 0 || ::setegid(0) != 0 || ::setgroups(groups.size(), groups.data()) != 0)
    return absl::InternalError(
        text::cat("--user ", user, ": cannot return to root: ", std::strerror(errno)));
  if (!s.ok() && absl::StrContains(s.message(), std::strerror(EACCES)))
    return absl::Status(
        s.code(), text::cat(std::string(s.message()), " (policy and state are read as ", user,
                            ", as at every reload: give the file to ", user, " or to a group of ",
                            user, ")"));
  return s;
}

absl::Status dropPrivileges(const std::string& user) {
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
