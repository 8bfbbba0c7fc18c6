// qtls-rspawn: a qmail-rspawn that execs nothing. qmail-start runs it as bin/qmail-rspawn with
// fd 0 a pipe from qmail-send and fd 1 a pipe to it (spec 1.1, 1.5). Each delivery qmail-send
// asks for is handed to qtls-remoted over the shim protocol (the queue file's descriptor is
// passed, as the shim passes fd 0), and the daemon's report is translated as qmail-rspawn
// translates qmail-remote's output (spec 1.3). One process, one poll() loop over its pipes
// and one socket per delivery; deliveries run at once up to the concurrency it announces.
//
// Contract: every request gets exactly one answer, "<slot><K|Z|D><text>NUL", in completion
// order; K only when the daemon said the remote server took the message; every trouble with
// the daemon is the shim's own Z text; EOF on fd 0 finishes what is in flight, then exit 0.
//
// Environment: QMAILHOME (default /var/qmail), QTLS_REMOTED_SOCKET (default
// /run/qtls/remoted.sock), QTLS_REMOTE_TIMEOUT (as the shim), QTLS_RSPAWN_CONCURRENCY (1-255,
// default 120, notqmail's conf-spawn), QTLS_QMAILQ_USER (owner of queue files, default qmailq).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "daemon_client.h"
#include "report/failure_table.h"
#include "shimproto/protocol.h"
#include "shimproto/rspawn_report.h"

namespace {

namespace sp = qtls::shimproto;
using qtls::report::Failure;

const char* socketPath = "/run/qtls/remoted.sock";
uid_t qmailq = 0;
int concurrency = 120;
int idleSeconds = 120;

struct Slot {
  bool busy = false;
  int sock = -1;
  size_t recipients = 1;
  time_t last = 0;    // when the daemon was last heard (or the request sent)
  std::string dotIp;  // where the daemon said the final dot went; empty before that
  std::string in;     // answer bytes not parsed yet
  sp::AnswerParser parser;
};
Slot slots[256];

std::string toSend;     // answers for qmail-send not written yet
bool sendGone = false;  // qmail-send stopped reading: answers are dropped from now on

time_t now() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec;
}

// "<slot><text>NUL" for qmail-send.
void answer(unsigned slot, const std::string& text) {
  if (sendGone) return;
  toSend.push_back(static_cast<char>(slot));
  toSend += text;
  toSend.push_back('\0');
}

void flushAnswers() {
  while (!toSend.empty() && !sendGone) {
    ssize_t w = ::write(1, toSend.data(), toSend.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      sendGone = true;  // as stock rspawn: deliveries go on, their answers are discarded
      toSend.clear();
      return;
    }
    toSend.erase(0, static_cast<size_t>(w));
  }
}

// The delivery in `slot` is over: the daemon's report (or the shim's text for a trouble),
// translated as qmail-rspawn translates qmail-remote's output.
void finish(unsigned slot, const std::string& report) {
  Slot& s = slots[slot];
  if (s.sock >= 0) ::close(s.sock);
  s = Slot();
  answer(slot, sp::rspawnReport(report));
}

void trouble(unsigned slot, const char* what, const char* cause) {
  finish(slot, sp::troubleReport(what, cause, socketPath, slots[slot].dotIp));
}

// A request refused before any delivery: the failure table's row, as qmail-send reads it.
void refuse(unsigned slot, Failure f) { answer(slot, qtls::report::judge(f).line()); }

// One request from qmail-send: the checks and texts of notqmail's spawn.c, in its order.
void request(unsigned slot, const std::string& messid, const std::string& sender,
             const std::string& recip) {
  if (slot >= static_cast<unsigned>(concurrency)) return refuse(slot, Failure::kSpawnDelnumTooBig);
  if (slots[slot].busy) return refuse(slot, Failure::kSpawnDelnumInUse);
  for (size_t i = 0; i < messid.size(); ++i)
    if ((i == 0 || messid[i] != '/') && (messid[i] < '0' || messid[i] > '9'))
      return refuse(slot, Failure::kSpawnMessidNonnumeric);
  if (messid.size() > 100) return refuse(slot, Failure::kSpawnMessidTooLong);
  if (messid.empty()) return refuse(slot, Failure::kSpawnMessidTooShort);
  const size_t at = recip.rfind('@');
  if (at == std::string::npos) return refuse(slot, Failure::kSpawnNoHost);
  const int fd = ::open(messid.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return refuse(slot, Failure::kSpawnOpen);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return refuse(slot, Failure::kSpawnFstat);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return refuse(slot, Failure::kSpawnWrongType);
  }
  if (st.st_uid != qmailq) {
    ::close(fd);
    return refuse(slot, Failure::kSpawnWrongOwner);
  }
  // qmail-remote's argv, as qmail-rspawn builds it: the host after the last '@'.
  const std::string host = recip.substr(at + 1);
  const char* args[] = {host.c_str(), sender.c_str(), recip.c_str()};
  const std::string req = sp::buildRequest(sp::kVersionRspawn, args, 3);
  Slot& s = slots[slot];
  s.busy = true;
  s.last = now();
  s.sock = sp::connectDaemon(socketPath);
  if (s.sock < 0) {
    const int e = errno;
    ::close(fd);
    return trouble(slot, sp::kNoConnect, e == ENAMETOOLONG ? "socket path too long" : strerror(e));
  }
  if (!sp::sendRequest(s.sock, req, fd)) {
    const int e = errno;
    ::close(fd);
    return trouble(slot, sp::kNoSend, strerror(e));
  }
  ::close(fd);  // the daemon has its own
  // The daemon reads to EOF; our end stays open for the answer. Closing it would tell the
  // daemon that nobody waits any more (it then abandons the delivery before the final dot).
  ::shutdown(s.sock, SHUT_WR);
  fcntl(s.sock, F_SETFL, fcntl(s.sock, F_GETFL) | O_NONBLOCK);
}

// Requests are a byte stream: slot byte, messid NUL, sender NUL, recipient NUL; many in one
// read or one split over several.
void takeRequests(std::string& in) {
  size_t pos = 0;
  for (;;) {
    if (in.size() - pos < 1) break;
    size_t n1 = in.find('\0', pos + 1);
    if (n1 == std::string::npos) break;
    size_t n2 = in.find('\0', n1 + 1);
    if (n2 == std::string::npos) break;
    size_t n3 = in.find('\0', n2 + 1);
    if (n3 == std::string::npos) break;
    const unsigned slot = static_cast<unsigned char>(in[pos]);
    request(slot, in.substr(pos + 1, n1 - pos - 1), in.substr(n1 + 1, n2 - n1 - 1),
            in.substr(n2 + 1, n3 - n2 - 1));
    pos = n3 + 1;
  }
  in.erase(0, pos);
}

void fromDaemon(unsigned slot) {
  Slot& s = slots[slot];
  char chunk[4096];
  for (;;) {
    ssize_t r = ::read(s.sock, chunk, sizeof chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      return trouble(slot, sp::kLost, strerror(errno));
    }
    if (r == 0)
      return trouble(slot, sp::kClosed, s.in.empty() ? sp::kClosedNothing : sp::kClosedMidFrame);
    s.last = now();
    s.in.append(chunk, static_cast<size_t>(r));
    for (;;) {
      std::string report;
      switch (s.parser.next(s.in, report)) {
        case sp::AnswerParser::Result::kKeepalive:
          continue;
        case sp::AnswerParser::Result::kDotSent:
          s.dotIp = report;
          continue;
        case sp::AnswerParser::Result::kReport:
          if (!sp::validReport(report, s.recipients)) return trouble(slot, sp::kMalformed, nullptr);
          return finish(slot, report);
        case sp::AnswerParser::Result::kMalformed:
          return trouble(slot, sp::kMalformed, nullptr);
        case sp::AnswerParser::Result::kMore:
          break;
      }
      break;
    }
  }
}

int envNumber(const char* name, int dflt, int lo, int hi) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  int n = atoi(v);
  return n < lo ? lo : n > hi ? hi : n;
}

// What qmail-start's environment and the queue give: the queue's directory, the daemon's
// socket, qmailq's uid, the concurrency (announced to qmail-send first), the idle timeout.
void setUp() {
  signal(SIGPIPE, SIG_IGN);
  const char* home = getenv("QMAILHOME");
  if (home == nullptr || *home == '\0') home = "/var/qmail";
  if (chdir(home) != 0 || chdir("queue/mess") != 0) _exit(111);
  const char* sock = getenv("QTLS_REMOTED_SOCKET");
  if (sock != nullptr && *sock != '\0') socketPath = sock;
  const char* owner = getenv("QTLS_QMAILQ_USER");
  struct passwd* pw = getpwnam(owner && *owner ? owner : "qmailq");
  if (pw == nullptr) _exit(111);
  qmailq = pw->pw_uid;
  concurrency = envNumber("QTLS_RSPAWN_CONCURRENCY", 120, 1, 255);
  idleSeconds = sp::idleTimeout();
  // As stock qmail-rspawn: a fresh start forgets the dead hosts of qmail-remote's table.
  int tcpto = ::open("../lock/tcpto", O_WRONLY | O_CLOEXEC);
  if (tcpto >= 0) {
    static const char zeros[1024] = {0};
    (void)!::write(tcpto, zeros, sizeof zeros);
    ::close(tcpto);
  }
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  toSend.push_back(static_cast<char>(concurrency));
}

}  // namespace

int main(int argc, char** argv) {
  // By hand only: qmail-start runs it without arguments.
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    const char v[] = "qtls-rspawn " QTLS_VERSION "\n";
    return ::write(1, v, sizeof v - 1) == static_cast<ssize_t>(sizeof v - 1) ? 0 : 111;
  }
  setUp();
  std::string in;
  bool eof = false;
  std::vector<struct pollfd> fds;
  std::vector<unsigned> owners;
  for (;;) {
    flushAnswers();
    unsigned busy = 0;
    for (const Slot& s : slots) busy += s.busy;
    if (eof && busy == 0 && (toSend.empty() || sendGone)) return 0;
    fds.clear();
    owners.clear();
    if (!eof) {
      fds.push_back({0, POLLIN, 0});
      owners.push_back(256);
    }
    if (!toSend.empty() && !sendGone) {
      fds.push_back({1, POLLOUT, 0});
      owners.push_back(257);
    }
    // Wake up for the first delivery whose daemon has been silent for the idle timeout.
    bool waiting = false;
    time_t soonest = 0;
    const time_t t = now();
    for (unsigned i = 0; i < 256; ++i) {
      if (!slots[i].busy || slots[i].sock < 0) continue;
      fds.push_back({slots[i].sock, POLLIN, 0});
      owners.push_back(i);
      const time_t left = slots[i].last + idleSeconds - t;
      if (!waiting || left < soonest) soonest = left;
      waiting = true;
    }
    const int timeout = !waiting ? -1 : soonest <= 0 ? 0 : static_cast<int>(soonest * 1000 + 100);
    int r = poll(fds.data(), fds.size(), timeout);
    if (r < 0 && errno != EINTR) _exit(111);
    for (size_t k = 0; r > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      if (owners[k] == 256) {
        char chunk[65536];
        ssize_t n = ::read(0, chunk, sizeof chunk);
        if (n > 0) {
          in.append(chunk, static_cast<size_t>(n));
          takeRequests(in);
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          eof = true;  // qmail-send is gone: finish what is in flight, then exit
        }
      } else if (owners[k] < 256) {
        fromDaemon(owners[k]);
      }
    }
    const time_t after = now();
    for (unsigned i = 0; i < 256; ++i)
      if (slots[i].busy && after - slots[i].last >= idleSeconds) {
        std::string why = "no answer for " + std::to_string(idleSeconds) + " seconds";
        trouble(i, sp::kTimedOut, why.c_str());
      }
  }
}
