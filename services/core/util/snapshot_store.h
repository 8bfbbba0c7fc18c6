// The one holder of a daemon's configuration snapshot: an immutable object behind a
// shared_ptr, built without the lock by whoever loads it and swapped in whole. A reader takes
// the pointer once (current()) and keeps using that object, whatever is published after.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace qtls {

template <typename T>
class SnapshotStore {
 public:
  std::shared_ptr<const T> current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

  // Publishes a freshly loaded snapshot under `generation` and the policy's content `digest`
  // (T has members of those names); a load that failed leaves the current one and returns why.
  absl::Status publish(absl::StatusOr<std::shared_ptr<T>> loaded, uint64_t generation,
                       std::string digest) {
    if (!loaded.ok()) return loaded.status();
    if (!*loaded) return absl::InternalError("no configuration to publish");
    (*loaded)->generation = generation;
    (*loaded)->digest = std::move(digest);
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(*loaded);
    return absl::OkStatus();
  }

  // Nothing published any more (a fleet candidate withdrawn): current() is null.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    current_.reset();
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const T> current_;
};

}  // namespace qtls
