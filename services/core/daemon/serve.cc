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
  std::function<void(std::error_code)> drainPoll = [&](std::error_code) {
    if (o.inFlight() == 0 || std::chrono::steady_clock::now() - stopStart > o.drain) {
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
