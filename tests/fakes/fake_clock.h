// A clock that moves only when the test says so (util/clock.h).
#pragma once

#include <atomic>

#include "util/clock.h"

namespace qtls::testing {

class FakeClock final : public Clock {
 public:
  time_point now() const override { return start_ + duration(offset_.load()); }
  void advance(duration d) { offset_ += d.count(); }

 private:
  const time_point start_ = std::chrono::steady_clock::now();
  std::atomic<duration::rep> offset_{0};
};

}  // namespace qtls::testing
