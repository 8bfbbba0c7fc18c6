// The node side of the fleet (node.h).
#include "fleet/node.h"

#include <chrono>
#include <ctime>
#include <random>

#include "log/log.h"
#include "qtls/v1/fleet.pb.h"
#include "util/text.h"

namespace qtls::fleet {

using Clock = std::chrono::steady_clock;

FleetNode::FleetNode(NodeOptions options, admin::PolicyStore& store)
    : o_(std::move(options)), layout_(o_.prefix), store_(store) {
  state_.ack = "NO_TARGET";
}

FleetNode::~FleetNode() { stop(); }

void FleetNode::start() { thread_ = std::thread(&FleetNode::run, this); }

void FleetNode::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (watch_) watch_->cancel();
    if (keepAlive_) keepAlive_->cancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FleetNode::policyChanged() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    statusDirty_ = true;
  }
  wake_.notify_all();
}

NodeState FleetNode::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void FleetNode::changed() {
  NodeState now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    statusDirty_ = true;
    now = state_;
  }
  wake_.notify_all();
  if (observer_) observer_(now);
}

void FleetNode::run() {
  std::mt19937 rng(std::random_device{}());
  double backoff = 0.5;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    const auto began = Clock::now();
    absl::Status s;
    auto etcd = Etcd::connect(o_.etcd);
    if (!etcd.ok()) {
      s = etcd.status();
    } else {
      s = serveLease(**etcd);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_.connected = false;
      if (stopping_) return;
    }
    changed();
    if (absl::IsFailedPrecondition(s) &&
        std::string(s.message()).find("compacted") != std::string::npos) {
      log::info("fleet: " + std::string(s.message()) + "; reading the keys again from the head");
      continue;
    }
    if (Clock::now() - began > std::chrono::seconds(30)) backoff = 0.5;
    // Jitter: a fleet that lost etcd together must not come back in step.
    const double wait = backoff * std::uniform_real_distribution<double>(0.5, 1.5)(rng);
    log::warn(text::cat("fleet: etcd: ", std::string(s.message()), "; serving generation ",
                        store_.current().generation, " meanwhile, retrying in ",
                        static_cast<int>(wait * 1000), " ms"));
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, std::chrono::duration<double>(wait), [this] { return stopping_; });
    backoff = std::min(backoff * 2, 30.0);
  }
}

absl::Status FleetNode::serveLease(Etcd& etcd) {
  auto lease = etcd.grantLease(o_.leaseTtlSeconds);
  if (!lease.ok()) return lease.status();
  std::atomic<bool> broken{false};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::CancelledError("stopping");
    lease_ = *lease;
    state_.connected = true;
    statusDirty_ = true;  // announce ourselves again under every new lease
  }
  std::thread hb(&FleetNode::heartbeat, this, std::ref(etcd), *lease, std::ref(broken));
  auto finish = [&](absl::Status s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken = true;
      watch_ = nullptr;
    }
    wake_.notify_all();
    hb.join();
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stopping_;
    }
    // Leaving for good: the status goes now rather than when the lease runs out.
    if (stopping) etcd.revokeLease(*lease).IgnoreError();
    return s;
  };
  changed();
  log::info(text::cat("fleet: connected to etcd as node ", o_.node, " (", o_.component, "), lease ",
                      *lease));

  const std::string mine = layout_.node(o_.component, o_.node);
  const std::string targetKey = layout_.target(o_.component, o_.node);
  const std::string candidateKey = layout_.candidate(o_.component, o_.node);
  int64_t revision = 0;
  auto keys = etcd.list(mine, &revision);
  if (!keys.ok()) return finish(keys.status());
  std::optional<KeyValue> target, candidate;
  for (const KeyValue& kv : *keys) {
    if (kv.key == targetKey) target = kv;
    if (kv.key == candidateKey) candidate = kv;
  }
  if (auto s = onCandidate(etcd, candidate); !s.ok()) return finish(s);
  if (auto s = onTarget(etcd, target); !s.ok()) return finish(s);

  auto watch = etcd.watch(mine, true, revision + 1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return finish(absl::CancelledError("stopping"));
    watch_ = watch.get();
  }
  for (;;) {
    auto events = watch->next();
    if (!events.ok()) {
      if (broken) return finish(absl::UnavailableError("the lease could not be kept alive"));
      return finish(events.status());
    }
    for (const WatchEvent& e : *events) {
      std::optional<KeyValue> kv;
      if (e.type == WatchEvent::Type::kPut) kv = e.kv;
      if (e.kv.key == candidateKey)
        if (auto s = onCandidate(etcd, kv); !s.ok()) return finish(s);
      if (e.kv.key == targetKey)
        if (auto s = onTarget(etcd, kv); !s.ok()) return finish(s);
    }
  }
}

void FleetNode::heartbeat(Etcd& etcd, int64_t lease, std::atomic<bool>& broken) {
  auto keepAlive = etcd.keepAlive(lease);
  {
    std::lock_guard<std::mutex> lock(mu_);
    keepAlive_ = keepAlive.get();
  }
  const auto every = std::chrono::seconds(std::max(1, o_.leaseTtlSeconds / 3));
  auto nextPing = Clock::now() + every;
  const std::string key = layout_.status(o_.component, o_.node);
  for (;;) {
    bool write = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_until(lock, nextPing, [&] { return stopping_ || broken || statusDirty_; });
      if (stopping_ || broken) break;
      write = statusDirty_;
      statusDirty_ = false;
    }
    if (write) {
      if (auto s = etcd.put(key, statusJson(), lease); !s.ok()) {
        log::warn("fleet: cannot write the status: " + std::string(s.message()));
        std::lock_guard<std::mutex> lock(mu_);
        statusDirty_ = true;  // again with the next ping
      }
    }
    if (Clock::now() >= nextPing) {
      auto ttl = keepAlive->ping();
      if (!ttl.ok()) {
        log::warn("fleet: " + std::string(ttl.status().message()));
        std::lock_guard<std::mutex> lock(mu_);
        broken = true;
        if (watch_) watch_->cancel();  // the session ends and starts over with a new lease
        break;
      }
      nextPing = Clock::now() + every;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  keepAlive_ = nullptr;
}

absl::Status FleetNode::onCandidate(Etcd& etcd, const std::optional<KeyValue>& kv) {
  v1::FleetCandidate c;
  std::string error;
  if (kv) {
    if (auto s = fromJson(kv->value, &c, kv->key); !s.ok()) error = std::string(s.message());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.candidateDigest == c.digest() && state_.candidateError == error)
      return absl::OkStatus();
  }
  std::unique_ptr<admin::CompiledPolicy> compiled;
  if (error.empty() && !c.digest().empty()) {
    auto items = getBundle(etcd, layout_, o_.component, c.digest());
    if (!items.ok() && absl::IsUnavailable(items.status())) return items.status();
    auto built = items.ok()
                     ? store_.preview(*items)
                     : absl::StatusOr<std::unique_ptr<admin::CompiledPolicy>>(items.status());
    if (built.ok())
      compiled = std::move(*built);
    else
      error = std::string(built.status().message());
  }
  if (!error.empty())
    log::warn(text::cat("fleet: candidate ", c.digest().empty() ? "-" : c.digest(),
                        " not evaluated: ", error));
  else if (!c.digest().empty())
    log::info(text::cat("fleet: evaluating candidate ", c.digest(), " report-only"));
  // Report-only: the candidate is judged beside the policy in force, or there is none.
  if (compiled)
    compiled->offerAsCandidate(c.digest());
  else
    store_.withdrawCandidate();
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.candidateDigest = c.digest();
    state_.candidateError = error;
  }
  changed();
  return absl::OkStatus();
}

absl::Status FleetNode::onTarget(Etcd& etcd, const std::optional<KeyValue>& kv) {
  auto settle = [&](const std::string& ack, const std::string& error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_.ack = ack;
      state_.error = error;
    }
    changed();
  };
  if (!kv) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_.targetDigest.clear();
      state_.rollout.clear();
      state_.provisional = false;
    }
    settle("NO_TARGET", "");
    return absl::OkStatus();
  }
  v1::FleetTarget t;
  absl::Status parsed = fromJson(kv->value, &t, kv->key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.targetDigest = t.digest();
    state_.rollout = t.rollout();
    state_.provisional = t.provisional();
  }
  if (!parsed.ok() || t.digest().empty()) {
    settle("NACK", parsed.ok() ? kv->key + ": no digest" : std::string(parsed.message()));
    return absl::OkStatus();
  }
  if (store_.current().digest == t.digest()) {
    settle("ACK", "");
    return absl::OkStatus();
  }
  settle("PENDING", "");
  auto items = getBundle(etcd, layout_, o_.component, t.digest());
  if (!items.ok()) {
    if (absl::IsUnavailable(items.status())) return items.status();  // reconnect, read again
    log::warn(text::cat("fleet: target ", t.digest(),
                        " refused: ", std::string(items.status().message())));
    settle("NACK", std::string(items.status().message()));
    return absl::OkStatus();
  }
  for (int attempt = 0;; ++attempt) {
    admin::ChangeRequest req;
    req.expectedDigest = store_.current().digest;
    req.replace = true;
    req.put = *items;
    req.caller = "fleet:" + (t.rollout().empty() ? std::string("etcd") : t.rollout());
    req.reason = t.rollout().empty() ? text::cat("target ", t.digest())
                                     : text::cat("rollout ", t.rollout(), " wave ", t.wave());
    if (!t.rollback().empty()) {  // a rollout undone: visible as such in the audit trail
      req.op = "rollback";
      req.reason += ": " + t.rollback();
    }
    auto r = store_.apply(req);
    if (r.ok()) {
      log::info(
          text::cat("fleet: applied target ", t.digest(), " as generation ", r->generationAfter));
      settle("ACK", "");
      return absl::OkStatus();
    }
    if (absl::IsAborted(r.status()) && attempt == 0) continue;  // a local change raced us
    log::warn(
        text::cat("fleet: target ", t.digest(), " refused: ", std::string(r.status().message())));
    settle("NACK", std::string(r.status().message()));
    return absl::OkStatus();
  }
}

std::string FleetNode::statusJson() {
  const admin::Generation cur = store_.current();
  v1::FleetStatus st;
  std::lock_guard<std::mutex> lock(mu_);
  st.set_node(o_.node);
  st.set_component(o_.component);
  st.set_target_digest(state_.targetDigest);
  v1::FleetStatus::Ack ack = v1::FleetStatus::NO_TARGET;
  v1::FleetStatus::Ack_Parse(state_.ack, &ack);
  st.set_ack(ack);
  st.set_error(state_.error);
  st.set_applied_digest(cur.digest);
  st.set_applied_generation(cur.generation);
  st.set_drift(state_.ack == "ACK" && cur.digest != state_.targetDigest);
  st.set_version(o_.version);
  st.set_time(static_cast<double>(std::time(nullptr)));
  st.set_rollout(state_.rollout);
  st.set_candidate_digest(state_.candidateDigest);
  st.set_candidate_error(state_.candidateError);
  return toJson(st);
}

}  // namespace qtls::fleet
