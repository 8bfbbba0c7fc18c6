// qtlsctl confine: moves the files a daemon's policy owns out of qmail's control/ into a
// directory that daemon's user owns, and leaves symlinks under the qmail names
// (docs/operations.md, "Who may write control/").
//
// Afterwards control/ itself can stay root's and read-only to the daemons: qtls-remoted can
// rewrite tlspolicy but never create control/rcpthosts, qtls-smtpd can rewrite rcpthosts but
// never control/smtproutes, and neither can touch the other's files. qmail's programs and the
// admin's editor read and write through the links as before. Runs as root; safe to run again.
#include "confine.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "admin/policy_store.h"
#include "cli.h"

namespace qtls::ctl {
namespace {

namespace fs = std::filesystem;

struct Name {
  std::string name;  // first component under control/: "tlspolicy", "tlshosts"
  bool directory;
};

// The names under control/ that a daemon's policy owns, from its schema: one place decides.
std::vector<Name> ownedNames(const admin::Schema& schema) {
  std::vector<Name> out;
  std::set<std::string> seen;
  for (const admin::Rule& r : schema.rules) {
    const size_t slash = r.path.find('/');
    const std::string first = r.path.substr(0, slash);
    if (seen.insert(first).second) out.push_back({first, slash != std::string::npos});
  }
  return out;
}

// Whether the policy file `name` holds a private key (servercert.pem, clientcert.pem).
bool holdsKey(const admin::Schema& schema, const std::string& name) {
  for (const admin::Rule& r : schema.rules)
    if (r.path == name && r.content == admin::Content::kCertAndKey) return true;
  return false;
}

[[noreturn]] void die(int code, const std::string& msg) {
  std::fprintf(stderr, "qtlsctl confine: %s\n", msg.c_str());
  std::exit(code);
}

void check(const std::error_code& ec, const std::string& what) {
  if (ec) die(kOther, what + ": " + ec.message());
}

void chownTree(const std::string& path, uid_t uid, gid_t gid) {
  if (::lchown(path.c_str(), uid, gid) != 0)
    die(kOther, "cannot chown " + path + ": " + std::strerror(errno));
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(path, ec))) return;
  for (const auto& e : fs::recursive_directory_iterator(path, ec))
    if (::lchown(e.path().c_str(), uid, gid) != 0)
      die(kOther, "cannot chown " + e.path().string() + ": " + std::strerror(errno));
  check(ec, "cannot walk " + path);
}

void syncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// control/<name> becomes a symlink to `target`, in one rename: a reader sees the old file
// or the link, never nothing.
void linkInPlace(const std::string& link, const std::string& target) {
  const std::string tmp = link + ".qtls-link." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0)
    die(kOther, "cannot create " + tmp + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    die(kOther, "cannot replace " + link + ": " + std::strerror(e));
  }
}

// What to confine where, from the arguments, checked.
struct Plan {
  admin::Schema schema;
  std::string control, dir, owner;
  uid_t uid = 0;
  gid_t gid = 0;
  bool dryRun = false;
  struct stat controlStat;
};

Plan readPlan(Args& a) {
  std::string daemon, home = "/var/qmail";
  Plan p;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--daemon")
      daemon = a.next(f);
    else if (f == "--qmail-home")
      home = a.next(f);
    else if (f == "--policy-dir")
      p.dir = a.next(f);
    else if (f == "--owner")
      p.owner = a.next(f);
    else if (f == "--dry-run")
      p.dryRun = true;
    else
      usage("confine: unknown argument " + f);
  }
  if (daemon == "qtls-remoted" || daemon == "remoted")
    p.schema = admin::remotedSchema();
  else if (daemon == "qtls-smtpd" || daemon == "smtpd")
    p.schema = admin::smtpdSchema();
  else
    usage("confine: --daemon qtls-remoted or qtls-smtpd");
  if (p.dir.empty() || p.dir[0] != '/') usage("confine: --policy-dir needs an absolute path");
  if (p.owner.empty()) usage("confine: --owner USER (the user the daemon runs as)");
  while (p.dir.size() > 1 && p.dir.back() == '/') p.dir.pop_back();
  struct passwd* pw = ::getpwnam(p.owner.c_str());
  if (pw == nullptr) die(kInvalid, "no such user: " + p.owner);
  p.uid = pw->pw_uid;
  p.gid = pw->pw_gid;
  if (p.uid == 0) die(kInvalid, "--owner root would give the daemon root's files; name its user");
  p.control = home + "/control";
  if (::stat(p.control.c_str(), &p.controlStat) != 0 || !S_ISDIR(p.controlStat.st_mode))
    die(kInvalid, p.control + ": not a directory");
  if (!p.dryRun && ::geteuid() != 0)
    die(kDenied, "must run as root (it moves files out of " + p.control + " and gives them to " +
                     p.owner + ")");
  if (p.dir.rfind(p.control + "/", 0) == 0)
    die(kInvalid, "--policy-dir must be outside " + p.control + ": the point is that " + p.owner +
                      " owns it and not control/");
  return p;
}

// Copy, then swap the link in, then remove the original: a crash leaves the original in
// force, and running again finishes the move (the copy is overwritten).
void moveInto(const Plan& p, const Name& n, const std::string& link, const std::string& target) {
  std::error_code ec;
  fs::remove_all(target, ec);
  check(ec, "cannot clear " + target);
  fs::copy(link, target, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  check(ec, "cannot copy " + link + " to " + target);
  fs::permissions(target, fs::status(link).permissions(), ec);
  // A key is its daemon's alone: qmail-tls's 0640 would hand it to the owner's group
  // (qmaild's is nofiles, which other daemons run as), and the daemon reads it as owner.
  if (!n.directory && holdsKey(p.schema, n.name)) fs::permissions(target, fs::perms(0600), ec);
  chownTree(target, p.uid, p.gid);
  syncPath(target);
  syncPath(p.dir);
  if (!n.directory) {
    linkInPlace(link, target);
    return;
  }
  const std::string aside = link + ".qtls-moved." + std::to_string(::getpid());
  if (::rename(link.c_str(), aside.c_str()) != 0)
    die(kOther, "cannot move " + link + " aside: " + std::strerror(errno));
  linkInPlace(link, target);
  fs::remove_all(aside, ec);
  check(ec, "cannot remove " + aside);
}

// One owned name in control/ made a link into the policy directory; false when it already was.
bool confineName(const Plan& p, const Name& n) {
  const std::string link = p.control + "/" + n.name;
  const std::string target = p.dir + "/" + n.name;
  struct stat st;
  const bool exists = ::lstat(link.c_str(), &st) == 0;
  if (exists && S_ISLNK(st.st_mode)) {
    std::error_code e1, e2;
    if (fs::read_symlink(link, e1) == fs::path(target)) {
      std::printf("ok       %s -> %s\n", link.c_str(), target.c_str());
      return false;
    }
    die(kInvalid, link + " is a symlink to " + fs::read_symlink(link, e2).string() + ", not to " +
                      target + "; move it by hand, then run this again");
  }
  if (exists && S_ISDIR(st.st_mode) != n.directory)
    die(kInvalid, link + (n.directory ? " is not a directory" : " is a directory") +
                      "; qmail expects the opposite");
  const char* what = !exists ? "link" : (n.directory ? "move dir" : "move");
  std::printf("%-8s %s -> %s\n", what, link.c_str(), target.c_str());
  if (p.dryRun) return true;
  if (exists) {
    moveInto(p, n, link, target);
  } else {
    // Nothing yet: the link points at what the daemon may create later.
    if (n.directory) {
      std::error_code ec;
      fs::create_directories(target, ec);
      check(ec, "cannot create " + target);
      chownTree(target, p.uid, p.gid);
    }
    linkInPlace(link, target);
  }
  syncPath(p.control);
  return true;
}

}  // namespace

int confine(Args& a) {
  const Plan p = readPlan(a);
  if (!p.dryRun) {
    std::error_code ec;
    fs::create_directories(p.dir, ec);
    check(ec, "cannot create " + p.dir);
    if (::chown(p.dir.c_str(), p.uid, p.gid) != 0 || ::chmod(p.dir.c_str(), 0755) != 0)
      die(kOther, "cannot give " + p.dir + " to " + p.owner + ": " + std::strerror(errno));
  }
  int changed = 0;
  for (const Name& n : ownedNames(p.schema))
    if (confineName(p, n)) ++changed;
  // The links are only half of it: control/ must not be writable by the daemon's user.
  const struct stat& cst = p.controlStat;
  const bool writable = cst.st_uid == p.uid || (cst.st_mode & S_IWOTH) ||
                        ((cst.st_mode & S_IWGRP) && cst.st_gid == p.gid);
  const char* control = p.control.c_str();
  if (writable)
    std::fprintf(stderr,
                 "qtlsctl confine: warning: %s is still writable by %s; make it root's and "
                 "0755 (chown root %s; chmod 755 %s) or %s can create any control file\n",
                 control, p.owner.c_str(), control, control, p.owner.c_str());
  std::printf("%s: %d name(s) %s, policy files in %s owned by %s\n", p.schema.daemon.c_str(),
              changed, p.dryRun ? "to change" : "changed", p.dir.c_str(), p.owner.c_str());
  return writable ? kRefused : kOk;
}

}  // namespace qtls::ctl
