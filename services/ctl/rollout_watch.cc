// qtlsctl rollout watch (rollout_watch.h).
#include "rollout_watch.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>

#include "rollout_step.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

absl::StatusOr<WatchFrame> readFrame(RolloutEnv& env, const std::string& component) {
  WatchFrame f;
  auto r = readRollout(env, component);
  if (!r.ok()) return r.status();
  f.r = *r;
  auto view = fleetView(*env.fleet, component);
  if (!view.ok()) return view.status();
  std::map<std::string, const NodeView*> by;
  for (const NodeView& n : *view) by[n.node] = &n;
  for (const std::string& name : f.r.nodes()) {
    WatchNode w;
    w.node = name;
    if (auto it = by.find(name); it != by.end()) {
      w.live = it->second->hasStatus;
      w.status = it->second->status;
      w.hasTarget = it->second->hasTarget;
      w.target = it->second->target;
    }
    f.nodes.push_back(std::move(w));
  }
  auto lock = env.fleet->etcd().get(env.fleet->layout.lock(component));
  if (!lock.ok()) return lock.status();
  if (*lock) f.driver = (*lock)->value;
  f.now = env.now();
  return f;
}

}  // namespace

int statusExit(v1::FleetRollout::State s) {
  switch (s) {
    case v1::FleetRollout::DONE:
      return kOk;
    case v1::FleetRollout::PAUSED:
      return kRolloutPaused;
    case v1::FleetRollout::ROLLED_BACK:
      return kRolloutRolledBack;
    case v1::FleetRollout::ABORTED:
      return kRolloutAborted;
    default:
      return kRolloutRunning;
  }
}

int watchRollout(RolloutEnv& env, const std::string& component, bool plain) {
  const bool redraw = !plain && ::isatty(STDOUT_FILENO);
  std::optional<WatchFrame> last;
  std::string unreachable;  // said once per outage
  for (;;) {
    auto f = readFrame(env, component);
    if (!f.ok()) {
      if (absl::IsNotFound(f.status())) return failed(f.status());
      const std::string why = std::string(f.status().message());
      if (why != unreachable) std::printf("etcd: %s; watching again in 1 s\n", why.c_str());
      std::fflush(stdout);
      unreachable = why;
      env.sleep(1);
      continue;
    }
    unreachable.clear();
    if (redraw) {
      std::printf("\x1b[H\x1b[2J");  // home, clear
      for (const std::string& line : drawFrame(*f)) std::printf("%s\n", line.c_str());
    } else {
      for (const std::string& line : frameChanges(last ? &*last : nullptr, *f))
        std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    if (finished(f->r.state())) {
      std::printf("rollout %s: %s: %s\n", f->r.id().c_str(), stateName(f->r.state()).c_str(),
                  f->r.reason().c_str());
      return statusExit(f->r.state());
    }
    last = std::move(*f);
    env.sleep(1);
  }
}

}  // namespace qtls::ctl
