// A per-operation deadline for a connection object owned by a shared_ptr: arm() before an
// operation, disarm() after it. If the deadline passes first, onExpire runs on the object (it
// closes or cancels the socket, so the pending operation fails). The handler holds a weak
// pointer, so a deadline after the object is gone touches nothing, and an arming number, so a
// handler that was already queued when its operation finished does not act on the next one.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <memory>

namespace qtls::daemon {

class Watchdog {
 public:
  explicit Watchdog(asio::any_io_executor ex) : timer_(ex) {}

  // The Watchdog must be a member of *owner (its `this` is used while owner is alive).
  template <typename Owner, typename OnExpire>
  void arm(std::weak_ptr<Owner> owner, std::chrono::steady_clock::duration d, OnExpire onExpire) {
    const uint64_t armed = ++armed_;
    timer_.expires_after(d);
    timer_.async_wait([this, owner = std::move(owner), armed,
                       onExpire = std::move(onExpire)](std::error_code ec) {
      if (ec) return;
      auto o = owner.lock();
      if (!o || armed_ != armed) return;
      onExpire(*o);
    });
  }

  void disarm() {
    ++armed_;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  uint64_t armed_ = 0;
};

}  // namespace qtls::daemon
