// Accepts inbound connections on any number of listeners (bound here, or handed over by systemd
// socket activation), enforces the connection limits with a clear 421, and starts a session
// per connection on its own strand.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "session.h"

namespace qtls::agent {

struct ListenerSpec {
  std::string address;  // "0.0.0.0:25", "[::]:465"
  bool implicitTls = false;
  std::string ciphers;  // per-listener cipher override; "" = control/tlsserverciphers
};
// "ADDR:PORT[,tls][,ciphers=STRING]"
absl::StatusOr<ListenerSpec> parseListenerSpec(const std::string& s);

struct ConnectionLimits {
  int maxConnections = 1000;
  int maxPerClient = 100;
};

class Listeners {
 public:
  using ParamsFn = std::function<SessionParams()>;
  Listeners(asio::io_context& io, ConnectionLimits limits, ParamsFn params);

  absl::Status bind(const ListenerSpec& spec);
  // Adopts listening sockets passed by systemd (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES). A socket
  // whose name ends in "smtps" or "tls" is implicit TLS. Returns how many were adopted.
  absl::StatusOr<int> adoptSystemdSockets();
  void start();
  void stop();
  int active() const { return active_.load(); }
  const std::vector<ListenerSpec>& specs() const { return specs_; }

 private:
  struct Listener {
    ListenerSpec spec;
    std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  };
  asio::awaitable<void> acceptLoop(Listener& l);
  asio::awaitable<void> serve(asio::ip::tcp::socket sock, const ListenerSpec& spec);

  asio::io_context& io_;
  ConnectionLimits limits_;
  ParamsFn params_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<ListenerSpec> specs_;
  std::atomic<int> active_{0};
  std::mutex mu_;
  std::map<asio::ip::address, int> perClient_;  // guarded by mu_
};

}  // namespace qtls::agent
