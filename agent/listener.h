// Accepts inbound connections on any number of listeners (bound here, or handed over by systemd
// socket activation), enforces the connection limits with a clear 421, and starts a session
// per connection on its own strand. Clients are counted per address, IPv6 per prefix (one /64
// is one client by default); the last slots are kept for clients holding none, and when every
// slot is taken the session idle the longest is closed to make room.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "session.h"
#include "session_registry.h"

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
  int ipv6Prefix = 64;      // IPv6 clients are counted per this prefix
  int reservePercent = 10;  // of maxConnections, only for clients with no connection yet
  // Whether a client holds a connection (for the reserve, and the right to evict) is judged
  // per IPv4 address and per this IPv6 prefix: one site usually has a whole /48.
  int reserveIpv6Prefix = 48;
  // A full table closes the session longest without progress, once it is this long.
  std::chrono::seconds evictAfterIdle{10};
};

// The key a client is counted under: the IPv4 address, or the IPv6 address cut to `prefix`.
asio::ip::address clientKey(const asio::ip::address& a, int ipv6Prefix);

class Listeners {
 public:
  using ParamsFn = std::function<SessionParams()>;
  Listeners(asio::io_context& io, ConnectionLimits limits, ParamsFn params,
            SessionRegistry& registry);

  absl::Status bind(const ListenerSpec& spec);
  // Adopts listening sockets passed by systemd (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES). A socket
  // whose name ends in "smtps" or "tls" is implicit TLS. Returns how many were adopted.
  absl::StatusOr<int> adoptSystemdSockets();
  void start();
  // Stops accepting; idle sessions are closed with a 421, the others after their message.
  void stop();
  // The drain ran out: every session is closed with a 421, also in the middle of DATA.
  void cutOff();
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
  SessionRegistry& registry_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<ListenerSpec> specs_;
  std::atomic<int> active_{0};
  std::mutex mu_;
  std::map<asio::ip::address, int> perClient_;  // guarded by mu_
  std::map<asio::ip::address, int> perGroup_;   // per reserveIpv6Prefix; guarded by mu_
  // A flood must not flood the log: one line per reason every kRefusalLogEvery, which counts
  // the refusals not logged since (the metric counts each). Guarded by mu_.
  struct RefusalLog {
    std::chrono::steady_clock::time_point last{};
    long unlogged = 0;
  };
  std::map<std::string, RefusalLog> refusalLog_;
};

}  // namespace qtls::agent
