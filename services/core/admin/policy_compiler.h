// How a daemon's own loader plugs into the policy store, typed: the store checks, activates
// and offers what the loader made without knowing its type, and the daemon receives its own
// configuration type back (TypedCompiler), so nothing is cast.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "util/snapshot_store.h"

namespace qtls::admin {

using Items = std::map<std::string, std::string>;  // path under control/ -> contents

// One generation's files loaded by the daemon's loader, not yet in force.
class CompiledPolicy {
 public:
  virtual ~CompiledPolicy() = default;
  // Conditions only a change through the API must meet (hand edits follow qmail's rules).
  virtual absl::Status checkChange() const = 0;
  // Puts this configuration in force, labelled with `generation` and `digest`; on error the
  // one in force stays.
  virtual absl::Status activate(uint64_t generation, const std::string& digest,
                                const Items& items) = 0;
  // Report-only: this configuration becomes the fleet's candidate under `digest`, judged
  // beside the one in force and deciding nothing.
  virtual void offerAsCandidate(const std::string& digest) = 0;
};

class PolicyCompiler {
 public:
  virtual ~PolicyCompiler() = default;
  // Loads the daemon's whole configuration from `home` (home/control/...): a private copy of
  // control/ holding exactly the generation's policy files. What it returns is what serves,
  // so a delivery never sees files other than the generation's.
  virtual absl::StatusOr<std::unique_ptr<CompiledPolicy>> compile(
      const std::string& home) const = 0;
  // The candidate was withdrawn or cannot be used: there is none any more.
  virtual void withdrawCandidate() = 0;
};

// A daemon's loader, activation and checks written against its own configuration type.
template <typename Config>
class TypedCompiler final : public PolicyCompiler {
 public:
  using Load = std::function<absl::StatusOr<std::shared_ptr<Config>>(const std::string& home)>;
  using Activate = std::function<absl::Status(uint64_t generation, const std::string& digest,
                                              const Items& items, std::shared_ptr<Config>)>;
  using Check = std::function<absl::Status(const Config&)>;

  // `checkChange` may be empty (no condition); `candidate` is null when the daemon evaluates
  // no fleet candidates.
  TypedCompiler(Load load, Activate activate, Check checkChange = nullptr,
                SnapshotStore<Config>* candidate = nullptr)
      : load_(std::move(load)),
        activate_(std::move(activate)),
        check_(std::move(checkChange)),
        candidate_(candidate) {}

  absl::StatusOr<std::unique_ptr<CompiledPolicy>> compile(const std::string& home) const override {
    auto cfg = load_(home);
    if (!cfg.ok()) return cfg.status();
    return std::unique_ptr<CompiledPolicy>(new Compiled(*this, std::move(*cfg)));
  }

  void withdrawCandidate() override {
    if (candidate_) candidate_->clear();
  }

 private:
  class Compiled final : public CompiledPolicy {
   public:
    Compiled(const TypedCompiler& c, std::shared_ptr<Config> cfg) : c_(c), cfg_(std::move(cfg)) {}
    absl::Status checkChange() const override {
      return c_.check_ ? c_.check_(*cfg_) : absl::OkStatus();
    }
    absl::Status activate(uint64_t generation, const std::string& digest,
                          const Items& items) override {
      return c_.activate_(generation, digest, items, cfg_);
    }
    void offerAsCandidate(const std::string& digest) override {
      if (c_.candidate_) c_.candidate_->publish(cfg_, 0, digest).IgnoreError();
    }

   private:
    const TypedCompiler& c_;
    std::shared_ptr<Config> cfg_;
  };

  Load load_;
  Activate activate_;
  Check check_;
  SnapshotStore<Config>* candidate_;
};

}  // namespace qtls::admin
