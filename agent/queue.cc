// qmail-queue runner.
#include "queue.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "util/text.h"

namespace qtls::agent {

std::string envelopeBytes(std::string_view sender, const std::vector<std::string>& recipients) {
  std::string e = "F";
  e.append(sender);
  e.push_back('\0');
  for (const auto& r : recipients) {
    e.push_back('T');
    e.append(r);
    e.push_back('\0');
  }
  e.push_back('\0');
  return e;
}

namespace {

using asio::redirect_error;
using asio::use_awaitable;

template <typename Buffers>
asio::awaitable<bool> writeAndClose(asio::posix::stream_descriptor& d, const Buffers& data) {
  std::error_code ec;
  co_await asio::async_write(d, data, redirect_error(use_awaitable, ec));
  d.close(ec);
  co_return !ec;
}

}  // namespace

asio::awaitable<QueueResult> runQmailQueue(std::string program, std::string home,
                                           std::string_view header, std::string_view body,
                                           std::string_view envelope) {
  QueueResult r;
  auto ex = co_await asio::this_coro::executor;
  int msgPipe[2], envPipe[2];
  if (pipe2(msgPipe, O_CLOEXEC) != 0) co_return r;
  if (pipe2(envPipe, O_CLOEXEC) != 0) {
    close(msgPipe[0]);
    close(msgPipe[1]);
    co_return r;
  }
  // posix_spawn (vfork semantics in glibc) rather than fork: copying the daemon's page tables
  // for every message cost more than the rest of the hand-off (measured: ~8 ms of system time
  // per message with fork on these VMs). qmail's child-side exit codes are kept: a home
  // directory that cannot be entered is 61, a program that cannot be run is 120.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, msgPipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, envPipe[0], 1);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // no socket leaks into qmail-queue
  posix_spawn_file_actions_addchdir_np(&actions, home.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char* const argv[] = {program.data(), nullptr};
  pid_t pid = -1;
  int err = posix_spawn(&pid, program.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(msgPipe[0]);
  close(envPipe[0]);
  if (err != 0) {
    close(msgPipe[1]);
    close(envPipe[1]);
    if (err == ENOMEM || err == EAGAIN) co_return r;  // not started: "qqt failure"
    struct stat st;
    r.started = true;
    r.exitCode = (::stat(home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) ? 61 : 120;
    co_return r;
  }
  r.started = true;
  r.pid = pid;
  asio::posix::stream_descriptor msgOut(ex, msgPipe[1]), envOut(ex, envPipe[1]);
  // qmail-queue reads the whole message before the envelope; after a failed write nothing more
  // is written, so the envelope is incomplete and qmail-queue queues nothing.
  const std::array<asio::const_buffer, 2> message = {asio::buffer(header), asio::buffer(body)};
  bool ok = co_await writeAndClose(msgOut, message);
  if (ok) ok = co_await writeAndClose(envOut, asio::buffer(envelope));
  std::error_code ignored;
  msgOut.close(ignored);
  envOut.close(ignored);
  r.writeError = !ok;

  int status = 0;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    asio::posix::stream_descriptor exited(ex, pidfd);
    std::error_code ec;
    co_await exited.async_wait(asio::posix::descriptor_base::wait_read,
                               redirect_error(use_awaitable, ec));
  }
  asio::steady_timer t(ex);
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      r.exitCode = -2;  // waitpid surprise
      co_return r;
    }
    t.expires_after(std::chrono::milliseconds(5));  // kernels without pidfd_open
    std::error_code ec;
    co_await t.async_wait(redirect_error(use_awaitable, ec));
  }
  if (WIFSIGNALED(status))
    r.crashed = true;
  else
    r.exitCode = WEXITSTATUS(status);
  co_return r;
}

std::string queueReply(const QueueResult& r, std::time_t now) {
  if (!r.started) return "451 qqt failure (#4.3.0)";
  if (r.crashed) return "451 qq crashed (#4.3.0)";
  switch (r.exitCode) {
    case -2:
      return "451 qq waitpid surprise (#4.3.0)";
    case 0:
      if (!r.writeError) return text::cat("250 ok ", static_cast<long long>(now), " qp ", r.pid);
      return "451 qq read error (#4.3.0)";
    case 115:
    case 11:
      return "554 envelope address too long for qq (#5.1.3)";
    case 31:
      return "554 mail server permanently rejected message (#5.3.0)";
    case 51:
      return "451 qq out of memory (#4.3.0)";
    case 52:
      return "451 qq timeout (#4.3.0)";
    case 53:
      return "451 qq write error or disk full (#4.3.0)";
    case 54:
      return "451 qq read error (#4.3.0)";
    case 55:
      return "451 qq unable to read configuration (#4.3.0)";
    case 56:
      return "451 qq trouble making network connection (#4.3.0)";
    case 61:
      return "451 qq trouble in home directory (#4.3.0)";
    case 62:
    case 63:
    case 64:
    case 65:
    case 66:
      return "451 qq trouble creating files in queue (#4.3.0)";
    case 71:
      return "451 mail server temporarily rejected message (#4.3.0)";
    case 72:
      return "451 connection to mail server timed out (#4.4.1)";
    case 73:
      return "451 connection to mail server rejected (#4.4.1)";
    case 74:
      return "451 communication with mail server failed (#4.4.2)";
    case 81:
    case 91:
      return "451 qq internal bug (#4.3.0)";
    case 120:
      return "451 unable to exec qq (#4.3.0)";
    default:
      if (r.exitCode >= 11 && r.exitCode <= 40) return "554 qq permanent problem (#5.3.0)";
      return "451 qq temporary problem (#4.3.0)";
  }
}

}  // namespace qtls::agent
