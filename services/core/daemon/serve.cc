// Signal handling, graceful drain and the thread pool shared by the daemons.
#include "daemon/serve.h"

#include <signal.h>
#include <systemd/sd-daemon.h>

#include <asio/steady_timer.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "log/log.h"
#include "util/text.h"

namespace qtls::daemon {

Runner::Runner(asio::io_context& io) : io_(io), signals_(io, SIGHUP, SIGTERM, SIGINT) {}

namespace {

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

std::string statusLine(const ServeOptions& o) {
  return o.status ? "\nSTATUS=" + o.status() : std::string();
}

// Runs reload() off the event loop, one at a time; requests made meanwhile collapse into one.
class ReloadThread {
 public:
  explicit ReloadThread(std::function<void()> reload)
      : reload_(std::move(reload)), thread_([this] { loop(); }) {}
  ~ReloadThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void request() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      wanted_ = true;
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return wanted_ || stop_; });
      if (stop_) return;
      wanted_ = false;
      lock.unlock();
      reload_();
      lock.lock();
    }
  }
  std::function<void()> reload_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace

void Runner::run(const ServeOptions& o) {
  asio::io_context& io = io_;
  // The reload runs on its own thread; the service manager hears of its start and end.
  ReloadThread reloader([&o] {
    notify("RELOADING=1\nSTATUS=reloading");
    o.reload();
    notify("READY=1" + statusLine(o));
  });
  // The watchdog is fed from the event loop itself: a loop that stops turning stops feeding it.
  uint64_t watchdogUsec = 0;
  asio::steady_timer watchdogTimer(io);
  std::function<void(std::error_code)> feed = [&](std::error_code ec) {
    if (ec) return;
    notify("WATCHDOG=1");
    watchdogTimer.expires_after(std::chrono::microseconds(watchdogUsec / 2));
    watchdogTimer.async_wait(feed);
  };
  if (sd_watchdog_enabled(0, &watchdogUsec) > 0 && watchdogUsec > 0) feed({});
  asio::signal_set& signals = signals_;
  asio::steady_timer drainTimer(io);
  std::chrono::steady_clock::time_point stopStart;
  bool cut = false;
  std::function<void(std::error_code)> drainPoll = [&](std::error_code) {
    const auto now = std::chrono::steady_clock::now();
    const int left = o.inFlight();
    if (left == 0) {
      io.stop();
      return;
    }
    if (!cut && now - stopStart > o.drain) {
      cut = true;
      stopStart = now;
      log::warn(text::cat("stopping: drain limit of ", o.drain.count(), " s reached; cutting off ",
                          left, " ", o.inFlightWhat));
      if (o.cutOff) o.cutOff();
    } else if (cut && now - stopStart > o.grace) {
      log::error(text::cat("stopping: ", left, " ", o.inFlightWhat, " did not end in time"));
      io.stop();
      return;
    }
    drainTimer.expires_after(std::chrono::milliseconds(100));
    drainTimer.async_wait(drainPoll);
  };
  std::function<void(std::error_code, int)> onSignal = [&](std::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reloader.request();
      signals.async_wait(onSignal);
      return;
    }
    log::info(text::cat("stopping: ", o.inFlight(), " ", o.inFlightWhat));
    notify("STOPPING=1\nSTATUS=stopping");  // the watchdog is fed on through the drain
    o.stopAccepting();
    stopStart = std::chrono::steady_clock::now();
    drainPoll({});
  };
  signals.async_wait(onSignal);
  notify("READY=1" + statusLine(o));
  std::vector<std::thread> pool;
  for (int i = 1; i < o.threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
}

}  // namespace qtls::daemon
