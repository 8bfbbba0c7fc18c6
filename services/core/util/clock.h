// Monotonic time as an interface, where a test must move it: the connection cache's idle and
// lifetime limits and tcpto's dead hosts read it. The daemon's is Clock::steady(); tests use
// tests/fakes/fake_clock.h.
#pragma once

#include <chrono>

namespace qtls {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  // The process's monotonic clock.
  static const Clock& steady();
};

class SteadyClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

inline const Clock& Clock::steady() {
  static const SteadyClock clock;
  return clock;
}

}  // namespace qtls
