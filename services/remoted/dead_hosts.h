// qmail-tcpto's job inside the daemon (spec 2.6; docs/compatibility.md): an address whose
// connects timed out twice in a row is skipped for a while, by every delivery, so that a dead
// MX costs one timeoutconnect per hour or so instead of one per delivery. The rules are
// qmail's: a timeout counts at most once per 120 s, a successful connect forgets the address,
// and an address is skipped while it has 2 or more timeouts and the last is less than
// (60 + jitter) * 64 seconds old (64 to 97 minutes). The table lives in memory, not in
// queue/lock/tcpto.
#pragma once

#include <asio/ip/address.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "metrics.h"
#include "util/clock.h"

namespace qtls::remoted {

class DeadHosts {
 public:
  explicit DeadHosts(RemoteMetrics* metrics, Clock::duration backoff = defaultBackoff(),
                     const Clock& clock = Clock::steady());
  static Clock::duration defaultBackoff();  // (60 + (pid & 31)) << 6 seconds, as qmail

  // True when `a` is to be skipped now; `why` then says since when, for the log.
  bool skip(const asio::ip::address& a, std::string* why = nullptr);
  void timedOut(const asio::ip::address& a);
  void connected(const asio::ip::address& a);

 private:
  struct Record {
    int timeouts = 0;
    Clock::time_point last;
  };
  void updateGauge();  // under mu_

  RemoteMetrics* metrics_;
  const Clock::duration backoff_;
  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Record> table_;
  static constexpr size_t kMaxRecords = 4096;
};

}  // namespace qtls::remoted
