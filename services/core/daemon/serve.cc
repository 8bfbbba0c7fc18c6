// Signal handling, graceful drain and the thread pool shared by the daemons.
#include "daemon/serve.h"

#include <signal.h>

#include <asio/steady_timer.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "log/log.h"
#include "util/text.h"

namespace qtls::daemon {

Runner::Runner(asio::io_context& io) : io_(io), signals_(io, SIGHUP, SIGTERM, SIGINT) {}

void Runner::run(const ServeOptions& o) {
  asio::io_context& io = io_;
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
      o.reload();
      signals.async_wait(onSignal);
      return;
    }
    log::info(text::cat("stopping: ", o.inFlight(), " ", o.inFlightWhat));
    o.stopAccepting();
    stopStart = std::chrono::steady_clock::now();
    drainPoll({});
  };
  signals.async_wait(onSignal);
  std::vector<std::thread> pool;
  for (int i = 1; i < o.threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
}

}  // namespace qtls::daemon
