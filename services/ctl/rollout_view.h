// What `qtlsctl rollout watch` shows (docs/rollouts.md, "Watching a rollout"): a frame of the
// rollout as etcd holds it (waves, each node's status and lease, the gates against their
// limits, the soak time left), drawn whole on a terminal, or as one line per change.
// Pure functions of what was read, for the unit tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qtls/v1/fleet.pb.h"

namespace qtls::ctl {

namespace v1 = qtls::v1;

std::string stateName(v1::FleetRollout::State s);  // "rolling", "rolled-back", ...
// The current wave, numbered from 1 as everywhere (messages, etcd, `rollout status`).
uint32_t waveNumber(const v1::FleetRollout& r);
// 5 -> "5", 0.5 -> "0.5", 0.0272727...: numbers and seconds as a person writes them (six
// significant digits), in the controller's messages and the watch view.
std::string asWritten(double v);

// A node as the watcher read it.
struct WatchNode {
  std::string node;
  bool live = false;  // its status key exists: the node's lease is alive
  v1::FleetStatus status;
  v1::FleetTarget target;
  bool hasTarget = false;
};

struct WatchFrame {
  v1::FleetRollout r;
  std::vector<WatchNode> nodes;  // the rollout's nodes, in rollout order
  std::string driver;            // who holds the rollout lock ("" if nobody)
  double now = 0;
};

// The whole view, a line each (no trailing newlines).
std::vector<std::string> drawFrame(const WatchFrame& f);
// What changed from `before` (nullptr: the first frame) to `after`, a line each: new history
// lines, a node's lease, ACK or applied policy, a gate's new value, the driver.
std::vector<std::string> frameChanges(const WatchFrame* before, const WatchFrame& after);

}  // namespace qtls::ctl
