// Registry of running sessions.
#include "session_registry.h"

#include <asio/post.hpp>

namespace qtls::agent {

uint64_t SessionRegistry::add(std::weak_ptr<SessionControl> s, asio::any_io_executor ex) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_++;
  entries_[id] = Entry{std::move(s), std::move(ex), false, Clock::now()};
  return id;
}

void SessionRegistry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(id);
}

void SessionRegistry::setWaiting(uint64_t id, bool waiting) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second.waiting = waiting;
}

void SessionRegistry::progress(uint64_t id, Clock::time_point at) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second.progress = at;
}

void SessionRegistry::post(const Entry& e, SessionControl::Close how) {
  asio::post(e.ex, [w = e.session, how] {
    if (auto s = w.lock()) s->close(how);
  });
}

void SessionRegistry::closeAll(SessionControl::Close how) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, e] : entries_) post(e, how);
}

bool SessionRegistry::evictIdlest(Clock::duration minIdle) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  std::map<uint64_t, Entry>::iterator best = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!it->second.waiting || now - it->second.progress < minIdle) continue;
    if (best == entries_.end() || it->second.progress < best->second.progress) best = it;
  }
  if (best == entries_.end()) return false;
  best->second.waiting = false;  // not chosen twice
  post(best->second, SessionControl::Close::kEvict);
  return true;
}

}  // namespace qtls::agent
