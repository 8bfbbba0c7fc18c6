// One record per finished outbound delivery or inbound session, fanned out to live watchers
// (gRPC WatchSessions). Publishing never blocks a delivery: each watcher has a bounded queue,
// and a watcher that falls behind loses the oldest records and is told how many.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace qtls::admin {

struct SessionEvent {
  double endTime = 0;     // Unix time
  std::string direction;  // "outbound" or "inbound"
  std::string peer, domain;
  std::string levelRequested, levelAchieved, policySource;
  std::string tlsVersion = "-", cipher = "-", verify = "-";
  bool resumed = false, connectionReused = false;
  std::string outcome, detail, tlsMode;
  std::string failureReason = "none";  // closed set: docs/metrics.md
  double durationSeconds = 0;
  uint32_t recipients = 0, messages = 0;
  uint64_t policyGeneration = 0;
  std::string policyDigest;  // content digest of that generation
  // Report-only: the fleet candidate being evaluated and what it would have done ("" if none).
  std::string candidateDigest, candidateVerdict;
};

class EventHub {
 public:
  class Watcher {
   public:
    // Waits up to `timeoutMs` for a record; nullopt on timeout or when the hub closed.
    // `dropped` is set to how many records were lost before the one returned.
    std::optional<SessionEvent> next(int timeoutMs, uint64_t* dropped);
    bool closed() const;

   private:
    friend class EventHub;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<SessionEvent> queue_;
    uint64_t dropped_ = 0;
    bool closed_ = false;
  };

  static constexpr size_t kQueueLimit = 1024;

  std::shared_ptr<Watcher> watch();
  void unwatch(const std::shared_ptr<Watcher>& w);
  void publish(const SessionEvent& e);
  // Wakes every watcher for good (daemon stopping).
  void close();
  size_t watchers() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
  bool closed_ = false;
};

// Unix time now, for SessionEvent::endTime.
double unixNow();

}  // namespace qtls::admin
