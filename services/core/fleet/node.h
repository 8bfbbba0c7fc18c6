// The node side of the fleet (docs/fleet.md), one per daemon started with --fleet-etcd.
//
// Watches <prefix>/nodes/<component>/<node>/ in etcd; a new target is fetched (bundle by
// digest), applied through the daemon's PolicyStore exactly like ApplyPolicy (same checks,
// compare-and-swap on content, journal, audit line with caller fleet:<rollout>), and answered
// with ACK or NACK in <prefix>/status/<component>/<node>, written under the node's lease so
// that a silent node disappears by itself. While etcd cannot be reached the daemon keeps
// serving its last good policy; the node reconnects with backoff and jitter, re-reads its
// keys from the head after a watch compaction, and announces its status again. A local change
// (API or hand edit) after the target was applied is reported as drift, not undone.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "admin/policy_store.h"
#include "fleet/etcd_client.h"
#include "fleet/layout.h"
#include "util/snapshot_store.h"

namespace qtls::fleet {

struct NodeOptions {
  EtcdOptions etcd;
  std::string prefix = "/qtls";
  std::string node;       // this host's name in the fleet
  std::string component;  // "remote" or "smtpd"
  int leaseTtlSeconds = 10;
  std::string version;  // qtls version, reported in the status
};

// What the node last learned, for metrics and the daemon's own decisions.
struct NodeState {
  bool connected = false;
  std::string targetDigest;  // "" when none
  std::string rollout;
  bool provisional = false;  // the target's wave is not promoted
  std::string candidateDigest;
  std::string candidateError;  // the candidate is not evaluated, for this reason
  std::string ack;             // "ACK", "NACK", "PENDING", "NO_TARGET"
  std::string error;
};

class FleetNode {
 public:
  FleetNode(NodeOptions options, admin::PolicyStore& store);
  ~FleetNode();
  FleetNode(const FleetNode&) = delete;
  FleetNode& operator=(const FleetNode&) = delete;

  void start();
  void stop();  // revokes the lease: the status key goes at once

  // The store changed the policy (any caller): the status is written again, with drift.
  void policyChanged();

  NodeState state() const;
  // Called (from the node's thread) whenever state() changes.
  void setObserver(std::function<void(const NodeState&)> f) { observer_ = std::move(f); }

 private:
  void run();
  // One lease's life: granted, kept alive, the node's keys watched, until etcd is lost.
  absl::Status serveLease(Etcd& etcd);
  void heartbeat(Etcd& etcd, int64_t lease, std::atomic<bool>& broken);
  absl::Status onTarget(Etcd& etcd, const std::optional<KeyValue>& kv);
  absl::Status onCandidate(Etcd& etcd, const std::optional<KeyValue>& kv);
  std::string statusJson();
  void changed();  // state changed: notify observer, ask for a status write

  NodeOptions o_;
  Layout layout_;
  admin::PolicyStore& store_;
  std::function<void(const NodeState&)> observer_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  NodeState state_;
  bool statusDirty_ = true;
  bool stopping_ = false;
  Etcd::Watch* watch_ = nullptr;          // the lease's, to cancel from stop()
  Etcd::KeepAlive* keepAlive_ = nullptr;  // idem
  int64_t lease_ = 0;
  std::thread thread_;
};

}  // namespace qtls::fleet
