// Shim request intake.
#include "intake.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstring>

#include "log/log.h"
#include "shimproto/protocol.h"
#include "util/netstring.h"
#include "util/text.h"

namespace qtls::remoted {

using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;
namespace proto = qtls::shimproto;

namespace {

std::string frame(char type, std::string_view payload) {
  std::string body(1, type), out;
  body.append(payload);
  text::appendNetstring(out, body);
  return out;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// One recvmsg: appends the bytes to `data` and keeps the first passed descriptor in `fd`
// (any further ones are closed). Returns what recvmsg returned.
ssize_t receiveChunk(int sock, std::string& data, int& fd) {
  char buf[65536];
  struct iovec iov = {buf, sizeof buf};
  union {
    char b[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } control;
  struct msghdr m;
  std::memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control.b;
  m.msg_controllen = sizeof control.b;
  ssize_t n = ::recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
      if (fd < 0)
        fd = passed;
      else
        ::close(passed);  // only one descriptor is expected
    }
  }
  data.append(buf, static_cast<size_t>(n));
  return n;
}

}  // namespace

bool parseRequest(std::string_view data, DeliveryRequest& req, std::string& why) {
  std::string version;
  if (!text::readNetstring(data, version, 7) ||
      (version != proto::kVersion && version != proto::kVersionRspawn)) {
    why = text::cat("unsupported protocol version (want ", proto::kVersion, " or ",
                    proto::kVersionRspawn, ")");
    return false;
  }
  req.frontend = version == proto::kVersionRspawn ? "rspawn" : "shim";
  std::vector<std::string> fields;
  std::string f;
  while (!data.empty()) {
    if (!text::readNetstring(data, f, 7)) {
      why = "malformed netstring";
      return false;
    }
    fields.push_back(f);
  }
  if (fields.size() < 3) {
    why = "need host, sender and at least one recipient";
    return false;
  }
  req.host = fields[0];
  req.sender = fields[1];
  req.recipients.assign(fields.begin() + 2, fields.end());
  for (const auto& s : fields)
    if (s.find('\0') != std::string::npos || s.find_first_of("\r\n") != std::string::npos) {
      why = "CR, LF or NUL in an argument";
      return false;
    }
  return true;
}

Intake::Intake(asio::io_context& io, std::string socketPath, std::set<uid_t> allowed, DepsFn deps,
               int maxDeliveries)
    : io_(io),
      path_(std::move(socketPath)),
      allowed_(std::move(allowed)),
      deps_(std::move(deps)),
      acceptor_(io),
      maxDeliveries_(maxDeliveries) {}

absl::Status Intake::start() {
  // Bound and listening under a temporary name, then renamed into place: the path only ever
  // names a socket that accepts, so a shim never meets a half-ready daemon ("refused").
  const std::string tmp = text::cat(path_, ".new.", ::getpid());
  ::unlink(tmp.c_str());
  std::error_code ec;
  asio::local::stream_protocol::endpoint ep(tmp);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(512, ec);
  // Anyone may connect; SO_PEERCRED decides who may deliver.
  if (!ec && ::chmod(tmp.c_str(), 0666) != 0) ec = std::error_code(errno, std::generic_category());
  if (!ec && ::rename(tmp.c_str(), path_.c_str()) != 0)
    ec = std::error_code(errno, std::generic_category());
  if (ec) {
    ::unlink(tmp.c_str());
    return absl::UnavailableError(text::cat("intake: listening on ", path_, ": ", ec.message()));
  }
  asio::co_spawn(io_, acceptLoop(), asio::detached);
  return absl::OkStatus();
}

void Intake::stop() {
  std::error_code ignored;
  acceptor_.close(ignored);
  // A shim that comes after this gets "No such file" rather than "Connection refused".
  ::unlink(path_.c_str());
}

asio::awaitable<void> Intake::acceptLoop() {
  for (;;) {
    std::error_code ec;
    auto strand = asio::make_strand(io_);
    asio::local::stream_protocol::socket sock(strand);
    co_await acceptor_.async_accept(sock, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      log::warn(text::cat("intake: accept: ", ec.message()));
      asio::steady_timer t(io_, std::chrono::milliseconds(100));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    asio::co_spawn(strand, serve(std::move(sock)), asio::detached);
  }
}

std::string Intake::refusalFor(const struct ucred& cred, int active) const {
  if (!allowed_.count(cred.uid)) {
    log::warn(text::cat("intake: refused uid=", cred.uid, " pid=", cred.pid,
                        ": not in the allow-list (--allow-user)"));
    EndingContext c;
    c.n = static_cast<long>(cred.uid);
    return judge(Failure::kIntakeUid, c).record();
  }
  if (active > maxDeliveries_) {
    log::warn(text::cat("intake: ", maxDeliveries_, " deliveries in progress, deferring one"));
    EndingContext c;
    c.n = static_cast<long>(maxDeliveries_);
    return judge(Failure::kIntakeBusy, c).record();
  }
  return "";
}

asio::awaitable<std::error_code> Intake::answer(Socket& sock, const std::string& report) {
  std::error_code wec;
  co_await asio::async_write(sock, asio::buffer(frame(proto::kReport, report)),
                             asio::redirect_error(use_awaitable, wec));
  co_return wec;
}

// The request: the first bytes carry the message fd; everything up to EOF, within 30 s. A
// refused client's request is read and thrown away (never buffered), so that the answer
// reaches it. The watchdog's handler checks a shared flag before touching the socket: a
// handler already queued when cancel() runs would otherwise close it mid-delivery, or after
// this frame ended.
asio::awaitable<Intake::Read> Intake::readRequest(Socket& sock, bool discard, std::string& data,
                                                  int& msgFd) {
  auto reading = std::make_shared<bool>(true);
  struct Stop {
    std::shared_ptr<bool> r;
    ~Stop() { *r = false; }
  } stop{reading};
  asio::steady_timer deadline(sock.get_executor(), std::chrono::seconds(30));
  deadline.async_wait([&sock, reading](std::error_code e) {
    if (e || !*reading) return;
    std::error_code ignored;
    sock.close(ignored);
  });
  for (;;) {
    std::error_code ec;
    co_await sock.async_wait(asio::socket_base::wait_read, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return Read::kGone;
    ssize_t n = receiveChunk(sock.native_handle(), data, msgFd);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) co_return Read::kGone;
    if (n == 0) break;
    if (discard) data.clear();
    if (data.size() > proto::kMaxRequest) co_return Read::kTooLarge;
  }
  *reading = false;
  deadline.cancel();
  co_return Read::kWhole;
}

// While the delivery runs: a keepalive frame every 10 s, and the shim's end of the socket
// watched. The moment it hangs up (killed, or its own timeout gave up), the delivery is
// stopped: nobody would receive the report, and qmail will retry the message.
asio::awaitable<void> Intake::watchShim(Socket& sock, DeliveryControl& control) {
  asio::steady_timer t(sock.get_executor());
  for (;;) {
    t.expires_after(std::chrono::seconds(proto::kKeepaliveSeconds));
    std::error_code tec, wec;
    auto first = co_await (
        t.async_wait(asio::redirect_error(use_awaitable, tec)) ||
        sock.async_wait(asio::socket_base::wait_error, asio::redirect_error(use_awaitable, wec)));
    // The loser of the race is cancelled; both are when the delivery is over.
    if (first.index() == 1) {
      if (wec == asio::error::operation_aborted) co_return;
      // A wait is a hint, not a verdict: asio can complete it for a readiness event that
      // belonged to an earlier socket (seen under load, with the shim alive and waiting),
      // and taking that as a hang-up would drop a delivered message's report. poll() says
      // whether this socket has really hung up.
      if (control.shimAlive()) continue;
      break;  // hang-up or error on the shim's socket
    }
    if (tec) co_return;
    co_await asio::async_write(sock, asio::buffer(frame(proto::kKeepalive, "")),
                               asio::redirect_error(use_awaitable, wec));
    if (wec) break;
  }
  control.stop(StopReason::kShimGone);
  // The delivery ends promptly now; this waits to be cancelled by its end.
  t.expires_at(asio::steady_timer::time_point::max());
  std::error_code ignored;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ignored));
}

// The shim's view of the delivery: the hang-up check, and the notice that the final dot goes.
std::shared_ptr<DeliveryControl> Intake::controlFor(Socket& sock) {
  auto control = std::make_shared<DeliveryControl>();
  const int fd = sock.native_handle();
  control->shimAlive = [fd] {
    struct pollfd p = {fd, 0, 0};  // POLLHUP and POLLERR are always reported
    return ::poll(&p, 1, 0) == 0 || (p.revents & (POLLHUP | POLLERR | POLLNVAL)) == 0;
  };
  control->dotGoing = [fd](const std::string& ip) {
    // From the connection's strand, beside the keepalive writer: one small send is one
    // record on a Unix stream socket, so frames never interleave. A full buffer (the front end
    // not reading) loses only this notice.
    const std::string f = frame(proto::kDotSent, ip);
    (void)!::send(fd, f.data(), f.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  };
  return control;
}

asio::awaitable<void> Intake::serve(Socket sock) {
  // The counter is shared, not a member reference: if the drain at shutdown times out, the
  // io_context destroys this frame after the Intake is gone.
  std::shared_ptr<std::atomic<int>> active = active_;
  ++*active;
  struct Done {
    std::shared_ptr<std::atomic<int>> a;
    ~Done() { --*a; }
  } done{active};
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) co_return;
  const std::string refusal = refusalFor(cred, *active);
  Fd msg;
  std::string data;
  const Read read = co_await readRequest(sock, !refusal.empty(), data, msg.fd);
  if (read == Read::kGone) co_return;
  if (read == Read::kTooLarge) {
    co_await answer(sock, judge(Failure::kIntakeTooLarge).record());
    co_return;
  }
  if (!refusal.empty()) {
    co_await answer(sock, refusal);
    co_return;
  }
  DeliveryRequest req;
  std::string why;
  struct stat st;
  if (!parseRequest(data, req, why)) {
    log::warn(text::cat("intake: malformed request from uid=", cred.uid, ": ", why));
    EndingContext c;
    c.arg = why;
    co_await answer(sock, judge(Failure::kIntakeMalformed, c).record());
    co_return;
  }
  if (msg.fd < 0 || fstat(msg.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    co_await answer(sock, judge(Failure::kIntakeNoFd).record());
    co_return;
  }
  req.messageFd = msg.fd;
  co_await run(std::move(sock), req);
}

asio::awaitable<void> Intake::run(Socket sock, const DeliveryRequest& req) {
  DeliveryDeps deps = deps_();
  std::shared_ptr<DeliveryControl> control = controlFor(sock);
  struct Registered {
    std::shared_ptr<Running> running;
    DeliveryControl* key;
    ~Registered() {
      std::lock_guard<std::mutex> lock(running->mu);
      running->controls.erase(key);
    }
  } registered{running_, control.get()};
  {
    std::lock_guard<std::mutex> lock(running_->mu);
    running_->controls[control.get()] = {control, sock.get_executor()};
  }
  // deliver() never throws, so this ends when the delivery does; watchShim is then cancelled.
  std::variant<DeliveryResult, std::monostate> r =
      co_await (deliver(deps, req, control) || watchShim(sock, *control));
  if (r.index() != 0) co_return;
  DeliveryResult& result = std::get<0>(r);
  const char verdict = qmailVerdict(result.report.bytes());
  if (control->reason() == StopReason::kShimGone) {
    log::warn(text::cat(
        "intake: shim for domain=", log::value(req.host), " went away during the delivery; ",
        result.possibleDuplicate ? "the final dot had been sent: possible duplicate"
                                 : "abandoned before the final dot, nothing was sent"));
    log::info(result.logLine);
    co_return;
  }
  if (auto wec = co_await answer(sock, result.report.bytes())) {
    // Gone after the delivery ended: qmail retries what the server may already have.
    log::warn(text::cat("intake: shim for domain=", log::value(req.host),
                        " went away before its answer (", wec.message(), "); status=", verdict,
                        verdict == 'K'             ? ": delivered, qmail will send it again"
                        : result.possibleDuplicate ? ": possible duplicate"
                                                   : ""));
  }
  if (control->stopped())
    log::warn(text::cat("intake: delivery for domain=", log::value(req.host), " cut off (",
                        stopReasonName(control->reason()), ")",
                        result.possibleDuplicate ? ": possible duplicate" : ""));
  log::info(result.logLine);
  std::error_code ec;
  sock.close(ec);  // the shim has its answer; QUIT below must not keep it waiting
  if (result.openConn) co_await onConn(result.openConn, result.openConn->quit());
}

void Intake::cutOff() {
  std::lock_guard<std::mutex> lock(running_->mu);
  for (auto& [key, entry] : running_->controls)
    asio::post(entry.second, [w = entry.first] {
      if (auto c = w.lock()) c->stop(StopReason::kShutdown);
    });
}

}  // namespace qtls::remoted
