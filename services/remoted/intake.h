// The shim-facing Unix socket server: authenticates each peer's uid with SO_PEERCRED,
// receives one delivery request (netstrings plus the message fd by SCM_RIGHTS), runs the
// delivery while sending keepalive frames, and answers with the report frame.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "delivery.h"
#include "delivery_control.h"

namespace qtls::remoted {

class Intake {
 public:
  using DepsFn = std::function<DeliveryDeps()>;
  Intake(asio::io_context& io, std::string socketPath, std::set<uid_t> allowed, DepsFn deps,
         int maxDeliveries = 1000);

  // Binds (replacing a stale socket file) and starts accepting.
  absl::Status start();
  void stop();
  int active() const { return active_->load(); }
  // Stops every delivery still running (the stop drain ran out): each answers its shim with a
  // Z that says so, "Possible duplicate!" when the final dot had been sent, and logs its line.
  void cutOff();

 private:
  using Socket = asio::local::stream_protocol::socket;
  enum class Read { kWhole, kGone, kTooLarge };

  asio::awaitable<void> acceptLoop();
  // One shim connection: who it is, its request, then run().
  asio::awaitable<void> serve(Socket sock);
  // The delivery, the shim watched meanwhile, the answer, and the connection's QUIT.
  asio::awaitable<void> run(Socket sock, const DeliveryRequest& req);
  // "" when the peer may deliver now, else its answer (uid not allowed, too many deliveries).
  std::string refusalFor(const struct ucred& cred, int active) const;
  static asio::awaitable<Read> readRequest(Socket& sock, bool discard, std::string& data,
                                           int& msgFd);
  static asio::awaitable<std::error_code> answer(Socket& sock, const std::string& report);
  static asio::awaitable<void> watchShim(Socket& sock, DeliveryControl& control);
  static std::shared_ptr<DeliveryControl> controlFor(Socket& sock);

  // The deliveries in progress, for cutOff(). Shared: a frame destroyed after the Intake
  // (shutdown) still deregisters safely.
  struct Running {
    std::mutex mu;
    std::map<DeliveryControl*, std::pair<std::weak_ptr<DeliveryControl>, asio::any_io_executor>>
        controls;
  };

  asio::io_context& io_;
  std::string path_;
  std::set<uid_t> allowed_;
  DepsFn deps_;
  asio::local::stream_protocol::acceptor acceptor_;
  int maxDeliveries_;
  std::shared_ptr<std::atomic<int>> active_ = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<Running> running_ = std::make_shared<Running>();
};

// Parses a request payload: netstrings "qtls-remote/1", host, sender, recipient...
// Returns false (with `why`) if it is malformed.
bool parseRequest(std::string_view data, DeliveryRequest& req, std::string& why);

}  // namespace qtls::remoted
