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
#include <time.h>
#include <unistd.h>

#include <string>

#include "daemon_client.h"
#include "report/failure_table.h"
#include "shimproto/protocol.h"

namespace {

using qtls::report::Failure;
using qtls::report::judge;

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

std::string dotIp;  // where the daemon said the final dot went; empty before that

// A Z report about the daemon, naming the socket and the cause.
[[noreturn]] void daemonTrouble(const char* what, const char* cause) {
  finish(qtls::shimproto::troubleReport(what, cause, socketPath, dotIp));
}

// The message as a regular file descriptor: fd 0 itself when it is a regular file (what
// qmail-rspawn gives), else a memfd holding a copy of it (a pipe, when run by hand).
int messageFd() {
  struct stat st;
  if (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) return 0;
  int fd = memfd_create("qtls-remote-message", MFD_CLOEXEC);
  if (fd < 0) finish(judge(Failure::kShimOutOfMemory).record());
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(0, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      finish(judge(Failure::kShimReadMessage).record());
    }
    for (ssize_t off = 0; off < r;) {
      ssize_t w = ::write(fd, buf + off, static_cast<size_t>(r - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        finish(judge(Failure::kShimOutOfMemory).record());
      }
      off += w;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) finish(judge(Failure::kShimReadMessage).record());
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  // By hand only: qmail-rspawn always passes host, sender and recipients.
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    const char v[] = "qtls-remote " QTLS_VERSION "\n";
    writeAll(1, v, sizeof v - 1);
    return 0;
  }
  if (argc < 4) finish(judge(Failure::kShimUsage).record());

  const char* home = getenv("QMAILHOME");
  if (home == nullptr || *home == '\0') home = "/var/qmail";
  if (chdir(home) == -1) finish(judge(Failure::kShimNoHome).record());
  const char* env = getenv("QTLS_REMOTED_SOCKET");
  if (env != nullptr && *env != '\0') socketPath = env;

  int msgFd = messageFd();

  namespace sp = qtls::shimproto;
  std::string req = sp::buildRequest(sp::kVersion, argv + 1, static_cast<size_t>(argc - 1));
  if (req.size() > sp::kMaxRequest) finish(judge(Failure::kShimTooLarge).record());
  int sock = sp::connectDaemon(socketPath);
  if (sock < 0)
    daemonTrouble(sp::kNoConnect, errno == ENAMETOOLONG ? "socket path too long" : strerror(errno));
  if (!sp::sendRequest(sock, req, msgFd)) daemonTrouble(sp::kNoSend, strerror(errno));
  shutdown(sock, SHUT_WR);

  // The answer: keepalives, then one report; each read waits at most the idle timeout.
  const int idle = sp::idleTimeout();
  const size_t recipients = static_cast<size_t>(argc - 3);
  sp::AnswerParser parser;
  std::string buf, report;
  for (;;) {
    switch (parser.next(buf, report)) {
      case sp::AnswerParser::Result::kKeepalive:
        continue;
      case sp::AnswerParser::Result::kDotSent:
        dotIp = report;
        continue;
      case sp::AnswerParser::Result::kReport:
        if (!sp::validReport(report, recipients)) daemonTrouble(sp::kMalformed, nullptr);
        finish(report);
      case sp::AnswerParser::Result::kMalformed:
        daemonTrouble(sp::kMalformed, nullptr);
      case sp::AnswerParser::Result::kMore:
        break;
    }
    struct pollfd pfd = {sock, POLLIN, 0};
    int pr = poll(&pfd, 1, idle * 1000);
    if (pr < 0) {
      if (errno == EINTR) continue;
      daemonTrouble(sp::kLost, strerror(errno));
    }
    if (pr == 0) {
      std::string why = "no answer for " + std::to_string(idle) + " seconds";
      daemonTrouble(sp::kTimedOut, why.c_str());
    }
    char chunk[4096];
    ssize_t r = ::read(sock, chunk, sizeof chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      daemonTrouble(sp::kLost, strerror(errno));
    }
    if (r == 0) daemonTrouble(sp::kClosed, buf.empty() ? sp::kClosedNothing : sp::kClosedMidFrame);
    buf.append(chunk, static_cast<size_t>(r));
  }
}
