// ConnLimits (conn_limits.h).
#include "conn_limits.h"

#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace qtls::remoted {

ConnLimits::Slot& ConnLimits::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    address_ = std::move(o.address_);
    o.owner_ = nullptr;
  }
  return *this;
}

void ConnLimits::Slot::release() {
  if (owner_) owner_->release(address_);
  owner_ = nullptr;
}

bool ConnLimits::room(const std::string& address) const {
  if (total_ >= o_.total) return false;
  auto it = busy_.find(address);
  return it == busy_.end() || it->second < o_.perAddress;
}

void ConnLimits::take(const std::string& address) {
  ++busy_[address];
  ++total_;
  if (metrics_) metrics_->connOpen().set(static_cast<double>(total_));
}

void ConnLimits::release(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  if (--busy_[address] == 0) busy_.erase(address);
  --total_;
  // The first waiter that fits now gets the slot; its timer is cancelled on its own strand.
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (!room(it->address)) continue;
    take(it->address);
    *it->granted = true;
    if (auto t = it->timer.lock()) asio::post(t->get_executor(), [t] { t->cancel(); });
    waiters_.erase(it);
    break;
  }
  if (metrics_) metrics_->connOpen().set(static_cast<double>(total_));
}

asio::awaitable<ConnLimits::Slot> ConnLimits::acquire(std::string address,
                                                      DeliveryControl& control) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex, o_.wait);
  auto granted = std::make_shared<bool>(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (room(address)) {
      take(address);
      co_return Slot(this, address);
    }
    waiters_.push_back(Waiter{address, timer, granted});
  }
  control.interrupt = [timer] { timer->cancel(); };
  std::error_code ec;
  co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  control.interrupt = nullptr;
  bool got;
  {
    std::lock_guard<std::mutex> lock(mu_);
    got = *granted;
    if (!got)
      for (auto it = waiters_.begin(); it != waiters_.end(); ++it)
        if (it->granted == granted) {
          waiters_.erase(it);
          break;
        }
  }
  if (got) {
    if (metrics_) metrics_->connWaits.with({"granted"}).add(1);
    Slot s(this, address);
    if (control.stopped()) co_return Slot();  // stopped while it was on its way: s gives it back
    co_return s;
  }
  if (metrics_ && !control.stopped()) metrics_->connWaits.with({"timeout"}).add(1);
  co_return Slot();
}

}  // namespace qtls::remoted
