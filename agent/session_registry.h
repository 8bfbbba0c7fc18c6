// The sessions in progress, so that the listeners can stop them (SIGTERM: idle sessions get a
// 421 at once, the rest when their message is done or the drain runs out) and make room when
// the connection table is full (the session that has gone longest without progress is closed
// with a 421). Progress is a transaction moving: MAIL or RCPT accepted, a message finished, DATA
// arriving above the rate floor; NOOP, RSET, HELP or a slow trickle of DATA are not.
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
  // The session is waiting for the client (evictable once it has made no progress for the
  // eviction time), or busy with something of its own (qmail-queue, a reply): not evictable.
  void setWaiting(uint64_t id, bool waiting);
  // The session's transaction moved (see above); a new session counts as progress.
  void progress(uint64_t id, Clock::time_point at = Clock::now());

  void closeAll(SessionControl::Close how);
  // Closes the waiting session that has gone longest without progress, if that is at least
  // `minIdle`.
  bool evictIdlest(Clock::duration minIdle);

 private:
  struct Entry {
    std::weak_ptr<SessionControl> session;
    asio::any_io_executor ex;
    bool waiting = false;
    Clock::time_point progress;
  };
  void post(const Entry& e, SessionControl::Close how);

  std::mutex mu_;
  uint64_t next_ = 1;
  std::map<uint64_t, Entry> entries_;  // guarded by mu_
};

}  // namespace qtls::agent
