// qtlsctl shim install|uninstall --qmail-home DIR [--rspawn] [--from DIR]: the reversible swap
// of qmail's programs for qtls's (docs/operations.md, "Install"). The package never touches
// a qmail home by itself; this command is how an operator does it, and undoes it.
//
// install: bin/qmail-remote is renamed to bin/qmail-remote.orig (once: an .orig already there
// is never overwritten) and qtls-remote is copied in its place, mode 0711 as qmail installs
// it, through a temporary name and rename, so qmail-rspawn never finds a half-written file.
// uninstall: the .orig is renamed back. Both report what they did, or that nothing was needed.
#include "shim_cmd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace qtls::ctl {
namespace {

struct Swap {
  std::string program;  // qmail's name, under bin/
  std::string ours;     // qtls's program, under --from
};

bool sameContent(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0 || sa.st_size != sb.st_size)
    return false;
  return readFile(a) == readFile(b);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "qtlsctl shim: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(kOther);
}

void copyInto(const std::string& from, const std::string& to) {
  const std::string data = readFile(from);
  const std::string tmp = to + ".qtls-new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0711);
  if (fd < 0) fail("cannot create " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write " + tmp);
    }
    off += static_cast<size_t>(w);
  }
  if (::fchmod(fd, 0711) != 0 || ::fsync(fd) != 0 || ::close(fd) != 0) fail("cannot write " + tmp);
  if (::rename(tmp.c_str(), to.c_str()) != 0) fail("cannot rename " + tmp + " to " + to);
}

bool exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace

int shimCommand(Args& a) {
  if (!a.more()) usage("shim: install or uninstall");
  const std::string op = a.next("shim");
  if (op != "install" && op != "uninstall") usage("shim: install or uninstall, not " + op);
  std::string home, from = "/usr/lib/qtls";
  bool rspawn = false;
  while (a.more()) {
    const std::string f = a.next("");
    if (f == "--qmail-home")
      home = a.next(f);
    else if (f == "--from")
      from = a.next(f);
    else if (f == "--rspawn")
      rspawn = true;
    else
      usage("shim: unknown argument " + f);
  }
  if (home.empty()) usage("shim: --qmail-home DIR (e.g. /var/qmail)");
  std::vector<Swap> swaps = {{"qmail-remote", "qtls-remote"}};
  if (rspawn) swaps.push_back({"qmail-rspawn", "qtls-rspawn"});
  for (const Swap& s : swaps) {
    const std::string bin = home + "/bin/" + s.program, orig = bin + ".orig";
    const std::string ours = from + "/" + s.ours;
    if (op == "install") {
      if (!exists(ours)) {
        errno = ENOENT;
        fail(ours);
      }
      if (sameContent(bin, ours)) {
        std::printf("%s is already %s\n", bin.c_str(), s.ours.c_str());
        continue;
      }
      if (exists(bin) && !exists(orig) && ::rename(bin.c_str(), orig.c_str()) != 0)
        fail("cannot keep " + bin + " as " + orig);
      copyInto(ours, bin);
      std::printf("%s is now %s (the original is %s)\n", bin.c_str(), s.ours.c_str(),
                  exists(orig) ? orig.c_str() : "none");
    } else {
      if (!exists(orig)) {
        std::printf("%s: no %s to put back; left as it is\n", bin.c_str(), orig.c_str());
        continue;
      }
      if (::rename(orig.c_str(), bin.c_str()) != 0) fail("cannot put " + orig + " back");
      std::printf("%s is qmail's again\n", bin.c_str());
    }
  }
  return kOk;
}

}  // namespace qtls::ctl
