// The sessions in progress, so that the listeners can stop them (SIGTERM: idle sessions get a
// 421 at once, the rest when their message is done or the drain runs out) and make room when
// the connection table is full (the session idle the longest is closed with a 421).
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "session.h"

namespace qtls::agent {

class SessionRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  uint64_t add(std::weak_ptr<SessionControl> s, asio::any_io_executor ex);
  void remove(uint64_t id);
  // The session is waiting for a command with none begun (since `since`), or is busy.
  void setIdle(uint64_t id, bool idle, Clock::time_point since = Clock::now());

  void closeAll(SessionControl::Close how);
  // Closes the session idle the longest, if one has been idle for at least `minIdle`.
  bool evictIdlest(Clock::duration minIdle);

 private:
  struct Entry {
    std::weak_ptr<SessionControl> session;
    asio::any_io_executor ex;
    bool idle = false;
    Clock::time_point since;
  };
  void post(const Entry& e, SessionControl::Close how);

  std::mutex mu_;
  uint64_t next_ = 1;
  std::map<uint64_t, Entry> entries_;  // guarded by mu_
};

}  // namespace qtls::agent
