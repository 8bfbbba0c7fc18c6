// The event loop both daemons run: `threads` threads on one io_context; SIGHUP calls reload()
// on a thread of its own (reading, validating and compiling a policy never holds up the event
// loop; SIGHUPs that arrive meanwhile make one more reload);
// SIGTERM or SIGINT calls stopAccepting(), waits until inFlight() is 0 (at most `drain`); if
// work is left then, cutOff() tells it to end now and it gets `grace` more to answer and log.
// Then the loop stops. The signals are caught from the Runner's construction on, so a daemon
// constructs it before it publishes its socket: a SIGHUP sent right after start must not kill it.
//
// Under systemd (Type=notify; docs/operations.md) it tells the service manager READY=1 when
// run() starts (listeners bound, policy loaded), RELOADING=1 and READY=1 around each reload,
// STOPPING=1 on SIGTERM, a STATUS= line naming the policy in force, and WATCHDOG=1 from the
// event loop every half WatchdogSec, so a stuck loop gets the daemon restarted. Without
// $NOTIFY_SOCKET all of it does nothing.
#pragma once

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
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
  std::function<void()> cutOff;  // may be empty
  std::chrono::seconds grace{5};
  std::string inFlightWhat = "in flight";  // for the stopping log line
  // The service manager's STATUS= line ("generation 3, sha256:..."); may be empty.
  std::function<std::string()> status;
};

class Runner {
 public:
  explicit Runner(asio::io_context& io);
  // Runs the loop until stopped; signals that arrived earlier are handled first.
  void run(const ServeOptions& options);

 private:
  asio::io_context& io_;
  asio::signal_set signals_;
};

}  // namespace qtls::daemon
