#include "admin/event_hub.h"

#include <algorithm>
#include <chrono>

namespace qtls::admin {

std::optional<SessionEvent> EventHub::Watcher::next(int timeoutMs, uint64_t* dropped) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
               [&] { return closed_ || !queue_.empty(); });
  if (queue_.empty()) return std::nullopt;
  SessionEvent e = std::move(queue_.front());
  queue_.pop_front();
  *dropped = dropped_;
  dropped_ = 0;
  return e;
}

bool EventHub::Watcher::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

std::shared_ptr<EventHub::Watcher> EventHub::watch() {
  auto w = std::make_shared<Watcher>();
  std::lock_guard<std::mutex> lock(mu_);
  w->closed_ = closed_;
  watchers_.push_back(w);
  return w;
}

void EventHub::unwatch(const std::shared_ptr<Watcher>& w) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), w), watchers_.end());
}

void EventHub::publish(const SessionEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : watchers_) {
    {
      std::lock_guard<std::mutex> wl(w->mu_);
      if (w->queue_.size() >= kQueueLimit) {
        w->queue_.pop_front();
        ++w->dropped_;
      }
      w->queue_.push_back(e);
    }
    w->cv_.notify_one();
  }
}

void EventHub::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  for (auto& w : watchers_) {
    {
      std::lock_guard<std::mutex> wl(w->mu_);
      w->closed_ = true;
    }
    w->cv_.notify_all();
  }
}

size_t EventHub::watchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watchers_.size();
}

double unixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace qtls::admin
