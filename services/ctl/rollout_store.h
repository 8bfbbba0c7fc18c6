// The rollout's state in etcd, read and written with compare-and-swap, and the lock that lets
// one controller drive it at a time (rollout.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "rollout.h"
#include "util/text.h"

namespace qtls::ctl {

// The rollout value and the revision it was read at.
struct Read {
  v1::FleetRollout r;
  int64_t modRevision = 0;
  bool exists = false;
};

absl::StatusOr<Read> loadRollout(RolloutEnv& env, const std::string& component);
// Writes `rd.r` if nobody else wrote it since `rd` was read (then `rd` is read again);
// ABORTED otherwise: read again, then decide again.
absl::Status storeRollout(RolloutEnv& env, Read& rd);

// The lock that makes one controller at a time: a key under our lease, kept alive by a thread.
// 30 s: an etcd restart must not cost the lock; a dead controller's lock goes after that.
constexpr int kLockTtlSeconds = 30;
class Lock {
 public:
  static absl::StatusOr<std::unique_ptr<Lock>> take(RolloutEnv& env, const std::string& component) {
    fleet::Etcd& etcd = env.fleet->etcd();
    auto lease = etcd.grantLease(kLockTtlSeconds);
    if (!lease.ok()) return lease.status();
    const std::string key = env.fleet->layout.lock(component);
    auto got = etcd.create(key, env.who, *lease);
    if (!got.ok() || !*got) {
      etcd.revokeLease(*lease).IgnoreError();
      if (!got.ok()) return got.status();
      auto holder = etcd.get(key);
      return absl::FailedPreconditionError(
          text::cat("the ", component, " rollout is being driven by ",
                    holder.ok() && *holder ? (*holder)->value : std::string("someone"),
                    "; it goes on without you (rollout status), or pause it first"));
    }
    return std::unique_ptr<Lock>(new Lock(etcd, *lease, key, env.who));
  }
  ~Lock() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    {
      std::lock_guard<std::mutex> l(mu_);
      keepAlive_->cancel();
    }
    thread_.join();
    etcd_.revokeLease(lease_).IgnoreError();  // the lock key goes with it
  }
  bool lost() const { return lost_; }

 private:
  Lock(fleet::Etcd& etcd, int64_t lease, std::string key, std::string who)
      : etcd_(etcd),
        lease_(lease),
        key_(std::move(key)),
        who_(std::move(who)),
        keepAlive_(etcd.keepAlive(lease, true)) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> l(mu_);
      while (!done_) {
        cv_.wait_for(l, std::chrono::seconds(3), [this] { return done_; });
        if (done_) break;
        l.unlock();
        // etcd away: keep trying on a new stream; the lease (and the lock) survive a short
        // outage. Only a lease etcd says is gone loses the lock.
        auto ttl = keepAlive_->ping();
        // A keep-alive just after etcd restarts can answer TTL 0 for a lease that is still
        // there: the lock is lost only when its key no longer holds our lease.
        if (absl::IsNotFound(ttl.status())) {
          auto held = etcd_.get(key_);
          if (held.ok() && (!*held || (*held)->lease != lease_ || (*held)->value != who_))
            lost_ = true;
        }
        l.lock();
        if (!ttl.ok() && !done_) keepAlive_ = etcd_.keepAlive(lease_, true);
      }
    });
  }
  fleet::Etcd& etcd_;
  int64_t lease_;
  const std::string key_, who_;
  std::unique_ptr<fleet::Etcd::KeepAlive> keepAlive_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> lost_{false};
  std::thread thread_;
};

}  // namespace qtls::ctl
