// inotify on control/ and what it links to; a reload once the files are quiet.
#include "daemon/control_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "log/log.h"
#include "util/text.h"

namespace qtls::daemon {
namespace {

constexpr uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                             IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
// After a refused reload: 1, 2, 4, 8, 16 s, then only the next change.
constexpr int kRetries = 5;

}  // namespace

ControlWatch::ControlWatch(std::string controlDir, std::chrono::milliseconds quiet,
                           std::function<absl::Status()> reload)
    : control_(std::move(controlDir)), quiet_(quiet), reload_(std::move(reload)) {}

ControlWatch::~ControlWatch() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stopFd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_ >= 0) ::close(inotify_);
  if (stopFd_ >= 0) ::close(stopFd_);
}

absl::Status ControlWatch::start() {
  if (quiet_.count() == 0) return absl::OkStatus();
  inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  stopFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_ < 0 || stopFd_ < 0)
    return absl::InternalError(text::cat("--watch-control: inotify: ", std::strerror(errno),
                                         " (raise fs.inotify.max_user_instances, or give "
                                         "--watch-control 0 and reload with SIGHUP)"));
  watchAll();
  thread_ = std::thread([this] { loop(); });
  return absl::OkStatus();
}

void ControlWatch::watch(const std::string& dir) {
  if (watched_.count(dir)) return;
  if (::inotify_add_watch(inotify_, dir.c_str(), kEvents) < 0) {
    if (errno != ENOENT)
      log::warn(text::cat("control watch: cannot watch ", dir, ": ", std::strerror(errno),
                          "; changes there apply at SIGHUP"));
    return;
  }
  watched_.insert(dir);
}

void ControlWatch::watchAll() {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> dirs = {control_};
  for (size_t i = 0; i < dirs.size(); ++i) {
    watch(dirs[i]);
    for (fs::directory_iterator it(dirs[i], ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code e2;
      const bool link = it->is_symlink(e2);
      // Subdirectories of control/ itself (tlshosts/, notlshosts/), followed through a link.
      if (i == 0 && it->is_directory(e2)) dirs.push_back(it->path().string());
      if (!link) continue;
      // A link `qtlsctl confine` made for a file that does not exist yet points into a
      // directory all the same: watch that, so the first write through the link is seen.
      fs::path target = fs::read_symlink(it->path(), e2);
      if (e2) continue;
      if (target.is_relative()) target = it->path().parent_path() / target;
      target = fs::weakly_canonical(target, e2);
      if (e2) continue;
      watch(fs::is_directory(target, e2) ? target.string() : target.parent_path().string());
    }
    ec.clear();
  }
}

void ControlWatch::loop() {
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> due;  // when the files will have been quiet long enough
  int retries = 0;
  alignas(struct inotify_event) char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)];
  for (;;) {
    int timeout = -1;
    if (due) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*due - Clock::now());
      timeout = static_cast<int>(std::max<long long>(left.count(), 0));
    }
    struct pollfd fds[2] = {{stopFd_, POLLIN, 0}, {inotify_, POLLIN, 0}};
    const int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      log::error(text::cat("control watch: poll: ", std::strerror(errno),
                           "; hand edits now apply at SIGHUP only"));
      return;
    }
    if (fds[0].revents) return;
    if (n > 0 && fds[1].revents) {
      bool any = false;
      ssize_t got;
      while ((got = ::read(inotify_, buf, sizeof buf)) > 0) {
        for (char* p = buf; p < buf + got;) {
          auto* e = reinterpret_cast<struct inotify_event*>(p);
          if (e->mask & IN_IGNORED) {  // a watched directory went away: watch again later
            watched_.clear();
          }
          any = true;
          p += sizeof(struct inotify_event) + e->len;
        }
      }
      if (any) {
        due = Clock::now() + quiet_;  // each change restarts the quiet period
        retries = 0;
      }
      continue;
    }
    if (!due || Clock::now() < *due) continue;
    due.reset();
    watchAll();  // links and directories made by the change
    if (absl::Status s = reload_(); !s.ok() && retries < kRetries) {
      due = Clock::now() + std::chrono::seconds(1 << retries);
      ++retries;
    }
  }
}

}  // namespace qtls::daemon
