// DeadHosts (dead_hosts.h).
#include "dead_hosts.h"

#include <unistd.h>

#include "util/text.h"

namespace qtls::remoted {

Clock::duration DeadHosts::defaultBackoff() {
  return std::chrono::seconds((60 + (::getpid() & 31)) << 6);
}

DeadHosts::DeadHosts(RemoteMetrics* metrics, Clock::duration backoff, const Clock& clock)
    : metrics_(metrics), backoff_(backoff), clock_(clock) {}

void DeadHosts::updateGauge() {
  if (!metrics_) return;
  const auto now = clock_.now();
  size_t dead = 0;
  for (const auto& [a, r] : table_)
    if (r.timeouts >= 2 && now - r.last < backoff_) ++dead;
  metrics_->tcptoDead().set(static_cast<double>(dead));
}

bool DeadHosts::skip(const asio::ip::address& a, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = table_.find(a.to_string());
  if (it == table_.end() || it->second.timeouts < 2) return false;
  const auto age = clock_.now() - it->second.last;
  if (age >= backoff_) return false;
  if (why)
    *why = text::cat(it->second.timeouts, " connect timeouts, the last ",
                     std::chrono::duration_cast<std::chrono::seconds>(age).count(), " s ago");
  if (metrics_) metrics_->tcptoSkips().add(1);
  return true;
}

void DeadHosts::timedOut(const asio::ip::address& a) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = clock_.now();
  auto it = table_.find(a.to_string());
  if (it == table_.end()) {
    if (table_.size() >= kMaxRecords) {  // forget the oldest, as qmail's 64-slot table does
      auto oldest = table_.begin();
      for (auto i = table_.begin(); i != table_.end(); ++i)
        if (i->second.last < oldest->second.last) oldest = i;
      table_.erase(oldest);
    }
    table_[a.to_string()] = Record{1, now};
  } else if (now - it->second.last >= std::chrono::seconds(120)) {
    it->second.timeouts = std::min(it->second.timeouts + 1, 10);
    it->second.last = now;
  }
  updateGauge();
}

void DeadHosts::connected(const asio::ip::address& a) {
  std::lock_guard<std::mutex> lock(mu_);
  if (table_.erase(a.to_string()) > 0) updateGauge();
}

}  // namespace qtls::remoted
