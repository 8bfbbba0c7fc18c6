// The shim-facing Unix socket server: authenticates each peer's uid with SO_PEERCRED,
// receives one delivery request (netstrings plus the message fd by SCM_RIGHTS), runs the
// delivery while sending keepalive frames, and answers with the report frame.
#pragma once

#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "delivery.h"

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

 private:
  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> serve(asio::local::stream_protocol::socket sock);

  asio::io_context& io_;
  std::string path_;
  std::set<uid_t> allowed_;
  DepsFn deps_;
  asio::local::stream_protocol::acceptor acceptor_;
  int maxDeliveries_;
  std::shared_ptr<std::atomic<int>> active_ = std::make_shared<std::atomic<int>>(0);
};

// Parses a request payload: netstrings "qtls-remote/1", host, sender, recipient...
// Returns false (with `why`) if it is malformed.
bool parseRequest(std::string_view data, DeliveryRequest& req, std::string& why);

}  // namespace qtls::remoted
