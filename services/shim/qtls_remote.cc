// qtls-remote: the qmail-remote drop-in. qmail-rspawn runs it once per delivery as
//   qmail-remote host sender recip...   (message on fd 0, report pipe on fd 1 and fd 2)
// It hands the delivery to qtls-remoted over a Unix socket, passing the message file
// descriptor with SCM_RIGHTS, and copies the daemon's report to fd 1.
//
// Contract (spec 1.2-1.3): always exit 0, end with exactly one K/Z/D report, never write
// to fd 2, never report K unless the daemon said the remote server took the message. Any
// doubt about the daemon is a Z, so qmail keeps the message and retries.
//
// Only libc and the C++ standard library: no exceptions, no iostreams, no allocation-heavy
// helpers, so that a delivery costs little more than an empty process.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "protocol.h"
#include "util/netstring.h"

namespace {

using qtls::shimproto::kKeepalive;
using qtls::shimproto::kMaxAnswerFrame;
using qtls::shimproto::kReport;

const char* socketPath = "/run/qtls/remoted.sock";

void writeAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // the report pipe is gone; nothing else can be done
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

[[noreturn]] void finish(const std::string& report) {
  writeAll(1, report.data(), report.size());
  _exit(0);
}

// A Z report about the daemon, naming the socket and the cause.
[[noreturn]] void daemonTrouble(const char* what, const char* cause) {
  std::string r = "Zqtls-remote: ";
  r += what;
  r += " qtls-remoted at ";
  r += socketPath;
  if (cause != nullptr) {
    r += ": ";
    r += cause;
  }
  r += ". (#4.3.0)\n";
  r.push_back('\0');
  finish(r);
}

// The message as a regular file descriptor: fd 0 itself when it is a regular file (what
// qmail-rspawn gives), else a memfd holding a copy of it (a pipe, when run by hand).
int messageFd() {
  struct stat st;
  if (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) return 0;
  int fd = memfd_create("qtls-remote-message", MFD_CLOEXEC);
  if (fd < 0) finish(std::string("ZOut of memory. (#4.3.0)\n") + '\0');
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(0, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      finish(std::string("ZUnable to read message. (#4.3.0)\n") + '\0');
    }
    for (ssize_t off = 0; off < r;) {
      ssize_t w = ::write(fd, buf + off, static_cast<size_t>(r - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        finish(std::string("ZOut of memory. (#4.3.0)\n") + '\0');
      }
      off += w;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0)
    finish(std::string("ZUnable to read message. (#4.3.0)\n") + '\0');
  return fd;
}

void sendRequest(int sock, const std::string& req, int fd) {
  struct iovec iov;
  iov.iov_base = const_cast<char*>(req.data());
  iov.iov_len = req.size();
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t sent;
  do sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) daemonTrouble("unable to send the delivery to", strerror(errno));
  // The descriptor travelled with the first byte; the rest is plain data.
  size_t off = static_cast<size_t>(sent);
  while (off < req.size()) {
    ssize_t w = send(sock, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      daemonTrouble("unable to send the delivery to", strerror(errno));
    }
    off += static_cast<size_t>(w);
  }
}

// Buffered reading of the daemon's answer: one read() per chunk, not per byte, each waiting at
// most `idle` seconds.
class Reader {
 public:
  Reader(int fd, int idleSeconds) : fd_(fd), idle_(idleSeconds) {}

  // Copies exactly n bytes to p. Returns false at EOF.
  bool read(char* p, size_t n) {
    while (n > 0) {
      if (pos_ == len_ && !fill()) return false;
      size_t take = len_ - pos_ < n ? len_ - pos_ : n;
      memcpy(p, buf_ + pos_, take);
      pos_ += take;
      p += take;
      n -= take;
    }
    return true;
  }

 private:
  bool fill() {
    for (;;) {
      struct pollfd pfd = {fd_, POLLIN, 0};
      int pr = poll(&pfd, 1, idle_ * 1000);
      if (pr < 0) {
        if (errno == EINTR) continue;
        daemonTrouble("lost contact with", strerror(errno));
      }
      if (pr == 0) {
        std::string why = "no answer for " + std::to_string(idle_) + " seconds";
        daemonTrouble("timed out waiting for", why.c_str());
      }
      ssize_t r = ::read(fd_, buf_, sizeof buf_);
      if (r < 0) {
        if (errno == EINTR) continue;
        daemonTrouble("lost contact with", strerror(errno));
      }
      pos_ = 0;
      len_ = static_cast<size_t>(r);
      return r > 0;
    }
  }

  int fd_, idle_;
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
};

// Checks that `out` is what qmail-remote may print: zero or more recipient records (r, h or
// s, at most one per recipient) and then exactly one K, Z or D record, each ending in NUL.
bool validReport(const std::string& out, size_t recipients) {
  size_t pos = 0, recipRecords = 0;
  while (pos < out.size()) {
    size_t nul = out.find('\0', pos);
    if (nul == std::string::npos) return false;
    char kind = out[pos];
    bool last = nul + 1 == out.size();
    if (kind == 'K' || kind == 'Z' || kind == 'D') return last && nul > pos + 1;
    if (kind != 'r' && kind != 'h' && kind != 's') return false;
    if (++recipRecords > recipients) return false;
    pos = nul + 1;
  }
  return false;
}

// How long to wait for any byte from the daemon (QTLS_REMOTE_TIMEOUT, default 120 s). Never
// less than three keepalive intervals: a shim that gave up on a daemon still working would
// print Z while the daemon might already have sent the final dot, and qmail would deliver the
// message again. Lower values are raised to the floor (docs/operations.md).
int idleTimeout() {
  const int floor = 3 * static_cast<int>(qtls::shimproto::kKeepaliveSeconds);
  const char* s = getenv("QTLS_REMOTE_TIMEOUT");
  int v = s ? atoi(s) : 0;
  if (v <= 0) return 120;
  return v < floor ? floor : v;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 4) finish(std::string("DI (qmail-remote) was invoked improperly. (#5.3.5)\n") + '\0');

  const char* home = getenv("QMAILHOME");
  if (home == nullptr || *home == '\0') home = "/var/qmail";
  if (chdir(home) == -1)
    finish(std::string("ZUnable to switch to home directory. (#4.3.0)\n") + '\0');
  const char* sp = getenv("QTLS_REMOTED_SOCKET");
  if (sp != nullptr && *sp != '\0') socketPath = sp;

  int msgFd = messageFd();

  std::string req;
  qtls::text::appendNetstring(req, qtls::shimproto::kVersion);
  for (int i = 1; i < argc; ++i) qtls::text::appendNetstring(req, argv[i]);
  if (req.size() > qtls::shimproto::kMaxRequest)
    finish(std::string("DToo many recipients or addresses too long for qtls-remote. (#5.3.5)\n") +
           '\0');

  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(socketPath) >= sizeof addr.sun_path)
    daemonTrouble("unable to connect to", "socket path too long");
  strcpy(addr.sun_path, socketPath);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) daemonTrouble("unable to connect to", strerror(errno));
  if (connect(sock, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0)
    daemonTrouble("unable to connect to", strerror(errno));

  sendRequest(sock, req, msgFd);
  shutdown(sock, SHUT_WR);

  Reader in(sock, idleTimeout());
  const size_t recipients = static_cast<size_t>(argc - 3);
  for (;;) {
    // Netstring length: up to 7 digits, then ':'.
    char c;
    size_t len = 0;
    int digits = 0;
    for (;;) {
      if (!in.read(&c, 1))
        daemonTrouble("connection closed before an answer from",
                      digits == 0 ? "daemon stopped or crashed" : "answer cut short");
      if (c == ':' && digits > 0) break;
      if (c < '0' || c > '9' || ++digits > 7) daemonTrouble("malformed answer from", nullptr);
      len = len * 10 + static_cast<size_t>(c - '0');
    }
    if (len == 0 || len > kMaxAnswerFrame) daemonTrouble("malformed answer from", nullptr);
    std::string frame(len + 1, '\0');
    if (!in.read(frame.data(), len + 1))
      daemonTrouble("connection closed before an answer from", "answer cut short");
    if (frame[len] != ',') daemonTrouble("malformed answer from", nullptr);
    frame.resize(len);
    if (frame[0] == kKeepalive && len == 1) continue;
    if (frame[0] != kReport) daemonTrouble("malformed answer from", nullptr);
    frame.erase(0, 1);
    if (!validReport(frame, recipients)) daemonTrouble("malformed answer from", nullptr);
    finish(frame);
  }
}
