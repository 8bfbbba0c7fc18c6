// The client side of the shim protocol (daemon_client.h).
#include "daemon_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "report/failure_table.h"
#include "shimproto/protocol.h"
#include "util/netstring.h"

namespace qtls::shimproto {

std::string buildRequest(const char* version, const char* const* args, size_t n) {
  std::string req;
  text::appendNetstring(req, version);
  for (size_t i = 0; i < n; ++i) text::appendNetstring(req, args[i]);
  return req;
}

int connectDaemon(const char* path) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(addr.sun_path, path);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  // A daemon whose backlog is full makes connect() wait; not for ever.
  struct timeval tv = {30, 0};
  setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int r;
  do r = connect(sock, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  while (r != 0 && errno == EINTR);
  if (r != 0) {
    const int e = errno;
    close(sock);
    errno = e;
    return -1;
  }
  return sock;
}

bool sendRequest(int sock, const std::string& req, int fd) {
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
  if (sent < 0) return false;
  // The descriptor travelled with the first byte; the rest is plain data.
  size_t off = static_cast<size_t>(sent);
  while (off < req.size()) {
    ssize_t w = send(sock, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(w);
  }
  return true;
}

AnswerParser::Result AnswerParser::next(std::string& buf, std::string& payload) {
  std::string_view in(buf);
  std::string frame;
  switch (text::takeNetstring(in, frame, 7, kMaxAnswerFrame)) {
    case text::NetstringRead::kIncomplete:
      return Result::kMore;
    case text::NetstringRead::kMalformed:
      return Result::kMalformed;
    case text::NetstringRead::kComplete:
      break;
  }
  if (frame.empty()) return Result::kMalformed;
  const char type = frame[0];
  Result r;
  if (type == kKeepalive && frame.size() == 1)
    r = Result::kKeepalive;
  else if (type == kReport)
    r = Result::kReport;
  else if (type == kDotSent &&
           strspn(frame.c_str() + 1, "0123456789abcdefABCDEF.:") == frame.size() - 1)
    r = Result::kDotSent;  // an address, nothing else, goes into a report
  else
    return Result::kMalformed;
  if (r != Result::kKeepalive) payload.assign(frame, 1, std::string::npos);
  buf.erase(0, buf.size() - in.size());
  return r;
}

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

std::string troubleReport(const char* what, const char* cause, const char* path,
                          const std::string& dotIp) {
  report::EndingContext c;
  c.ip = dotIp;
  c.arg = what;
  c.err = cause ? cause : "";
  c.path = path;
  return report::judge(dotIp.empty() ? report::Failure::kDaemonTrouble
                                     : report::Failure::kDaemonTroubleAfterDot,
                       c)
      .record();
}

int idleTimeout() {
  const int floor = 3 * static_cast<int>(kKeepaliveSeconds);
  const char* s = getenv("QTLS_REMOTE_TIMEOUT");
  int v = s ? atoi(s) : 0;
  if (v <= 0) return 120;
  if (v > 86400) return 86400;  // a day; keeps every timeout computed from it in range
  return v < floor ? floor : v;
}

}  // namespace qtls::shimproto
