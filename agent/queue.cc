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

// The daemon's environment without what describes a connection, plus `extra`.
std::vector<std::string> childEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    const std::string_view name = v.substr(0, v.find('='));
    if (name == "PROTO" || name == "RELAYCLIENT" || name.substr(0, 3) == "TCP") continue;
    out.emplace_back(v);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

}  // namespace

QueueJob::QueueJob(asio::any_io_executor ex) : ex_(ex), msgOut_(ex), envOut_(ex) {}
QueueJob::~QueueJob() {
  std::error_code ignored;
  msgOut_.close(ignored);
  envOut_.close(ignored);
  // A job dropped without commit() or abort() (the session was destroyed at shutdown): the
  // closed pipes make qmail-queue exit 54 without queueing; reap it without waiting here.
  if (result_.pid > 0 && !reaped_) {
    int status;
    waitpid(result_.pid, &status, WNOHANG);
  }
}

std::unique_ptr<QueueJob> QueueJob::start(asio::any_io_executor ex, const std::string& program,
                                          const std::string& home,
                                          const std::vector<std::string>& env) {
  auto job = std::unique_ptr<QueueJob>(new QueueJob(ex));
  QueueResult& r = job->result_;
  int msgPipe[2], envPipe[2];
  if (pipe2(msgPipe, O_CLOEXEC) != 0) return nullptr;
  if (pipe2(envPipe, O_CLOEXEC) != 0) {
    close(msgPipe[0]);
    close(msgPipe[1]);
    return nullptr;
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
  std::string prog = program;
  char* const argv[] = {prog.data(), nullptr};
  std::vector<std::string> envStrings = childEnvironment(env);
  std::vector<char*> envp;
  for (auto& e : envStrings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int err = posix_spawn(&pid, prog.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(msgPipe[0]);
  close(envPipe[0]);
  if (err != 0) {
    close(msgPipe[1]);
    close(envPipe[1]);
    if (err == ENOMEM || err == EAGAIN) return nullptr;  // not started: "qqt failure"
    struct stat st;
    r.started = true;
    r.exitCode = (::stat(home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) ? 61 : 120;
    job->failed_ = true;
    job->reaped_ = true;
    return job;
  }
  r.started = true;
  r.pid = pid;
  job->msgOut_.assign(msgPipe[1]);
  job->envOut_.assign(envPipe[1]);
  return job;
}

asio::awaitable<bool> QueueJob::write(std::string_view bytes) {
  if (failed_ || bytes.empty()) co_return !failed_;
  std::error_code ec;
  co_await asio::async_write(msgOut_, asio::buffer(bytes), redirect_error(use_awaitable, ec));
  // qmail-queue stopped reading (it exited): nothing more is written, the envelope never goes.
  if (ec) failed_ = true;
  co_return !failed_;
}

asio::awaitable<QueueResult> QueueJob::commit(std::string_view envelope) {
  std::error_code ec;
  msgOut_.close(ec);  // qmail-queue reads the message to EOF before the envelope
  if (!failed_) {
    co_await asio::async_write(envOut_, asio::buffer(envelope), redirect_error(use_awaitable, ec));
    if (ec) failed_ = true;
  }
  envOut_.close(ec);
  result_.writeError = failed_;
  co_await waitExit();
  co_return result_;
}

asio::awaitable<void> QueueJob::abort() {
  std::error_code ec;
  msgOut_.close(ec);
  envOut_.close(ec);  // no envelope: qmail-queue queues nothing (exit 54)
  co_await waitExit();
}

asio::awaitable<void> QueueJob::waitExit() {
  if (reaped_) co_return;
  reaped_ = true;
  const pid_t pid = result_.pid;
  int status = 0;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    asio::posix::stream_descriptor exited(ex_, pidfd);
    std::error_code ec;
    co_await exited.async_wait(asio::posix::descriptor_base::wait_read,
                               redirect_error(use_awaitable, ec));
  }
  asio::steady_timer t(ex_);
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      result_.exitCode = -2;  // waitpid surprise
      co_return;
    }
    t.expires_after(std::chrono::milliseconds(5));  // kernels without pidfd_open
    std::error_code ec;
    co_await t.async_wait(redirect_error(use_awaitable, ec));
  }
  if (WIFSIGNALED(status))
    result_.crashed = true;
  else
    result_.exitCode = WEXITSTATUS(status);
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
