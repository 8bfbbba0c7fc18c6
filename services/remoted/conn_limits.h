// Caps on simultaneous outbound connections in use: per server address and overall. A
// delivery over a cap waits, at most `wait`, for a slot to free, then is deferred (the failure
// table's `busy` row). The waiters are deliveries already admitted by the intake, so the queue is
// bounded by --max-deliveries; the first waiter whose address has room is served first.
// Idle connections in the cache do not hold a slot (their own limits are the cache's).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "delivery_control.h"
#include "metrics.h"

namespace qtls::remoted {

class ConnLimits {
 public:
  struct Options {
    size_t perAddress = 20;
    size_t total = 500;
    std::chrono::milliseconds wait{60000};
  };
  ConnLimits(Options o, RemoteMetrics* metrics) : o_(o), metrics_(metrics) {}

  // Held while a delivery uses a connection to `address`; released by destruction.
  class Slot {
   public:
    Slot() = default;
    Slot(ConnLimits* owner, std::string address) : owner_(owner), address_(std::move(address)) {}
    Slot(Slot&& o) noexcept : owner_(o.owner_), address_(std::move(o.address_)) {
      o.owner_ = nullptr;
    }
    Slot& operator=(Slot&& o) noexcept;
    ~Slot() { release(); }
    explicit operator bool() const { return owner_ != nullptr; }
    void release();

   private:
    ConnLimits* owner_ = nullptr;
    std::string address_;
  };

  // A slot for `address`, or an empty one when none freed within the wait or the delivery was
  // stopped meanwhile. Runs on the caller's executor.
  asio::awaitable<Slot> acquire(std::string address, DeliveryControl& control);
  const Options& options() const { return o_; }

 private:
  // A waiting delivery. Only a weak reference to its timer: a delivery whose coroutine is
  // destroyed at shutdown must not leave an Asio object here to outlive the io_context.
  struct Waiter {
    std::string address;
    std::weak_ptr<asio::steady_timer> timer;
    std::shared_ptr<bool> granted;
  };
  bool room(const std::string& address) const;  // under mu_
  void take(const std::string& address);        // under mu_
  void release(const std::string& address);

  const Options o_;
  RemoteMetrics* metrics_;
  std::mutex mu_;
  std::map<std::string, size_t> busy_;
  size_t total_ = 0;
  std::deque<Waiter> waiters_;
};

}  // namespace qtls::remoted
