// The admin API's listeners (listeners.h).
#include "admin/listeners.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "admin/server.h"
#include "admin/tls_front.h"
#include "control/control_files.h"
#include "util/text.h"

namespace qtls::admin {
namespace {

std::string unixPath(const std::string& listen) {
  std::string p = listen.substr(5);
  if (p.rfind("//", 0) == 0) p = p.substr(2);
  return p;
}

bool socketInUse(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un sa {};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  bool used = ::connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return used;
}

absl::StatusOr<std::string> readWhole(const std::string& path, const char* flag) {
  auto c = control::readFile(path);
  if (!c.ok())
    return absl::InvalidArgumentError(text::cat(flag, ": ", std::string(c.status().message())));
  if (!*c) return absl::InvalidArgumentError(text::cat(flag, ": ", path, " does not exist"));
  return std::move(**c);
}

}  // namespace

absl::StatusOr<AllowList> loadAllowList(const std::string& path) {
  auto lines = control::readList(path);
  if (!lines.ok()) return lines.status();
  if (!*lines) return absl::InvalidArgumentError(text::cat(path, " does not exist"));
  AllowList out;
  int n = 0;
  for (const std::string& l : **lines) {
    ++n;
    std::vector<std::string_view> f = text::splitAny(l, " \t");
    if (f.size() != 2 || (f[1] != "read" && f[1] != "write"))
      return absl::InvalidArgumentError(
          text::cat(path, " line ", n, ": expected \"<identity> read|write\", got \"", l, "\""));
    out[std::string(f[0])] = f[1] == "write";
  }
  if (out.empty()) return absl::InvalidArgumentError(text::cat(path, " lists no identity"));
  return out;
}

absl::StatusOr<std::string> prepareUnixSocket(const std::string& l) {
  const std::string path = unixPath(l);
  if (path.empty() || path[0] != '/')
    return absl::InvalidArgumentError(
        text::cat("--admin-listen ", l, ": a Unix socket needs an absolute path"));
  struct stat st;
  const std::string dir = path.substr(0, path.rfind('/'));
  if (::stat(dir.empty() ? "/" : dir.c_str(), &st) != 0)
    return absl::InvalidArgumentError(
        text::cat("--admin-listen ", l, ": directory ", dir, ": ", std::strerror(errno)));
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return absl::InvalidArgumentError(
          text::cat("--admin-listen ", l, ": ", path, " exists and is not a socket"));
    if (socketInUse(path))
      return absl::FailedPreconditionError(
          text::cat("--admin-listen ", l, ": another process is serving on ", path));
    ::unlink(path.c_str());  // left over from an earlier run
  }
  return path;
}

absl::StatusOr<std::unique_ptr<TlsFront>> makeTlsFront(const AdminOptions& o,
                                                       const std::string& l) {
  if (o.certFile.empty() || o.keyFile.empty() || o.clientCaFile.empty() || o.clientsFile.empty())
    return absl::InvalidArgumentError(text::cat(
        "refusing to serve the admin API on TCP ", l,
        " without mutual TLS: give --admin-cert, --admin-key, --admin-client-ca and "
        "--admin-clients (or use a Unix socket: --admin-listen unix:/run/qtls/admin.sock)"));
  auto cert = readWhole(o.certFile, "--admin-cert");
  if (!cert.ok()) return cert.status();
  auto key = readWhole(o.keyFile, "--admin-key");
  if (!key.ok()) return key.status();
  auto ca = readWhole(o.clientCaFile, "--admin-client-ca");
  if (!ca.ok()) return ca.status();
  auto allow = loadAllowList(o.clientsFile);
  if (!allow.ok())
    return absl::InvalidArgumentError(
        text::cat("--admin-clients: ", std::string(allow.status().message())));
  auto ctx = TlsFront::makeContext(*cert, *key, *ca);
  if (!ctx.ok()) return ctx.status();
  return std::make_unique<TlsFront>(std::move(*ctx), *allow);
}

absl::Status openToGroup(const std::vector<std::string>& paths, const std::string& group,
                         gid_t gid) {
  if (group.empty()) return absl::OkStatus();
  for (const std::string& path : paths) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0)
      return absl::InternalError(
          text::cat("cannot give ", path, " to group ", group, ": ", std::strerror(errno)));
    // Group access only for a group the operator named: the daemon's own group may be
    // shared with other qmail daemons (nofiles), which must not change TLS policy.
    if (::chmod(path.c_str(), 0660) != 0)
      return absl::InternalError(
          text::cat("cannot open ", path, " to its group: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace qtls::admin
