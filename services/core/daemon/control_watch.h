// Hand edits apply by themselves, as they did with qmail-tls (whose qmail-remote read
// tlshosts/ at every delivery): control/ is watched with inotify, with its subdirectories
// (tlshosts/, notlshosts/) and the directories that confined links point into, and once the
// files have been quiet for `quiet` the daemon reloads, exactly as on SIGHUP (validated whole,
// a new generation only when something changed, the old snapshot kept when the new one is
// refused). A refused reload (a file half written, say) is retried after 1, 2, 4, 8 and 16 s,
// and again at the next change. SIGHUP keeps working beside it.
#pragma once

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace qtls::daemon {

class ControlWatch {
 public:
  // `reload` runs on the watch's own thread; it must be safe beside a SIGHUP reload.
  ControlWatch(std::string controlDir, std::chrono::milliseconds quiet,
               std::function<absl::Status()> reload);
  ~ControlWatch();  // stops the thread
  ControlWatch(const ControlWatch&) = delete;
  ControlWatch& operator=(const ControlWatch&) = delete;

  // Starts watching (nothing when quiet is 0). Fails only when inotify cannot be had.
  absl::Status start();

 private:
  void loop();
  // Adds a watch for control/, each subdirectory, and each directory a link in them points
  // into; new ones appear after every change.
  void watchAll();
  void watch(const std::string& dir);

  const std::string control_;
  const std::chrono::milliseconds quiet_;
  std::function<absl::Status()> reload_;
  int inotify_ = -1;
  int stopFd_ = -1;  // an eventfd: written by the destructor
  std::set<std::string> watched_;
  std::thread thread_;
};

}  // namespace qtls::daemon
