// The event loop both daemons run: `threads` threads on one io_context; SIGHUP calls reload();
// SIGTERM or SIGINT calls stopAccepting(), waits until inFlight() is 0 (at most `drain`), then
// stops. Returns when the loop has stopped.
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <string>

namespace qtls::daemon {

struct ServeOptions {
  int threads = 2;
  std::chrono::seconds drain{60};
  std::function<void()> reload;
  std::function<void()> stopAccepting;
  std::function<int()> inFlight;
  std::string inFlightWhat = "in flight";  // for the stopping log line
};

void serve(asio::io_context& io, const ServeOptions& options);

}  // namespace qtls::daemon
