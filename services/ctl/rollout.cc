// The fleet rollout controller (rollout.h).
#include "rollout.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "fleet_prune.h"
#include "rollout_step.h"
#include "rollout_store.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

std::string waveList(const std::vector<std::string>& waves) {
  std::string out;
  for (const std::string& w : waves) out += (out.empty() ? "" : ",") + w;
  return out;
}

absl::StatusOr<v1::FleetRollout> drive(RolloutEnv& env, const std::string& component,
                                       const std::function<absl::Status(Read&)>& first) {
  auto lock = Lock::take(env, component);
  if (!lock.ok()) return lock.status();
  bool didFirst = false;
  for (;;) {
    if ((*lock)->lost())
      return absl::UnavailableError("lost the rollout lock (etcd unreachable); resume later");
    auto rd = loadRollout(env, component);
    if (!rd.ok()) {
      env.say(text::cat("etcd: ", std::string(rd.status().message()), "; the rollout waits"));
      env.sleep(2);
      continue;
    }
    if (!rd->exists) return absl::NotFoundError(text::cat("no ", component, " rollout"));
    if (!didFirst && first) {
      absl::Status s = first(*rd);
      if (absl::IsAborted(s)) continue;  // changed meanwhile: read again
      if (!s.ok()) return s;
      didFirst = true;
      continue;
    }
    didFirst = true;
    auto more = step(env, *rd);
    if (!more.ok()) {
      if (absl::IsAborted(more.status())) continue;  // someone paused or aborted: read again
      if (absl::IsUnavailable(more.status())) {
        // etcd away mid-rollout: nothing moves, the nodes keep their policy; try again.
        env.say(text::cat("etcd: ", std::string(more.status().message()), "; the rollout waits"));
        env.sleep(2);
        continue;
      }
      return more.status();
    }
    if (!*more) {
      if (finished(rd->r.state())) pruneAfterRollout(*env.fleet, component, env.now(), env.say);
      return rd->r;
    }
  }
}

}  // namespace

RolloutEnv defaultEnv(FleetContext& f) {
  RolloutEnv env;
  env.fleet = &f;
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  env.who = text::cat(f.who, "@", host, ":", ::getpid());
  env.now = [] {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  env.sleep = [](double s) {
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, s)));
  };
  env.say = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  env.prometheus = [](const std::string& url) { return prometheusAt(url); };
  return env;
}

absl::StatusOr<v1::FleetRollout> readRollout(RolloutEnv& env, const std::string& component) {
  auto rd = loadRollout(env, component);
  if (!rd.ok()) return rd.status();
  if (!rd->exists) return absl::NotFoundError(text::cat("no ", component, " rollout yet"));
  return rd->r;
}

absl::StatusOr<v1::FleetRollout> startRollout(RolloutEnv& env, const RolloutSpec& spec) {
  auto view = fleetView(*env.fleet, spec.component);
  if (!view.ok()) return view.status();
  std::vector<std::string> nodes = spec.nodes;
  std::map<std::string, const NodeView*> by;
  for (const NodeView& n : *view) by[n.node] = &n;
  if (nodes.empty())
    for (const NodeView& n : *view)
      if (n.hasStatus) nodes.push_back(n.node);
  if (nodes.empty())
    return absl::FailedPreconditionError(
        text::cat("no ", spec.component, " node has a status in etcd; nothing to roll out to"));
  for (const std::string& n : nodes) {
    auto it = by.find(n);
    if (it == by.end() || !it->second->hasTarget)
      return absl::FailedPreconditionError(
          text::cat("node ", n,
                    " has no target, so a rollback could not give it its policy back; give "
                    "every node a target first (qtlsctl fleet adopt, or fleet target)"));
  }
  if (auto w = waveSizes(spec.waves, nodes.size()); !w.ok()) return w.status();
  auto bundle = env.fleet->etcd().get(env.fleet->layout.bundle(spec.component, spec.digest));
  if (!bundle.ok()) return bundle.status();
  if (!*bundle)
    return absl::NotFoundError(text::cat("no bundle ", spec.digest, " for ", spec.component));

  auto rd = loadRollout(env, spec.component);
  if (!rd.ok()) return rd.status();
  if (rd->exists && !finished(rd->r.state()))
    return absl::AbortedError(text::cat("rollout ", rd->r.id(), " of ", spec.component, " is ",
                                        stateName(rd->r.state()),
                                        "; finish or abort it before starting another"));
  // The finished rollout this one replaces is kept as a record (written once the new one
  // is): `fleet prune` keeps the bundles of the last few rollouts, which a look back wants.
  std::optional<v1::FleetRollout> replaced;
  if (rd->exists) replaced = rd->r;
  v1::FleetRollout r;
  std::mt19937 rng(std::random_device{}());
  char id[32];
  std::snprintf(id, sizeof id, "r%ld-%04x", static_cast<long>(env.now()),
                static_cast<unsigned>(rng() & 0xffff));
  r.set_id(id);
  r.set_component(spec.component);
  r.set_digest(spec.digest);
  for (const std::string& w : spec.waves) r.add_waves(w);
  r.set_wave(1);
  r.set_wave_numbering(1);
  for (const std::string& n : nodes) r.add_nodes(n);
  r.set_soak_seconds(spec.soakSeconds);
  r.set_report_only_seconds(spec.reportOnlySeconds);
  r.set_ack_timeout_seconds(spec.ackTimeoutSeconds);
  r.set_interval_seconds(spec.intervalSeconds);
  r.set_on_node_loss(spec.onNodeLoss);
  r.set_prometheus(spec.prometheus);
  for (const v1::FleetGate& g : spec.gates) *r.add_gates() = g;
  if (!spec.reportOnlyGate.query().empty()) *r.mutable_report_only_gate() = spec.reportOnlyGate;
  r.set_created_by(env.who);
  r.set_state(spec.reportOnlySeconds > 0 ? v1::FleetRollout::REPORT_ONLY
                                         : v1::FleetRollout::ROLLING);
  r.set_phase_started(env.now());
  rd->r = r;
  note(env, rd->r,
       text::cat("started by ", env.who, ": ", spec.digest, " to ", nodes.size(),
                 " node(s) in waves ", waveList(spec.waves),
                 spec.reportOnlySeconds > 0 ? ", report-only first" : ""));
  if (auto s = storeRollout(env, *rd); !s.ok()) {
    if (absl::IsAborted(s))
      return absl::AbortedError("another rollout of " + spec.component + " started meanwhile");
    return s;
  }
  if (replaced)
    if (auto s =
            env.fleet->etcd().put(env.fleet->layout.finishedRollout(spec.component, replaced->id()),
                                  fleet::toJson(*replaced));
        !s.ok())
      env.say(text::cat("the finished rollout ", replaced->id(),
                        " was not kept under history/: ", std::string(s.message())));
  return rd->r;
}

absl::StatusOr<v1::FleetRollout> driveRollout(RolloutEnv& env, const std::string& component) {
  return drive(env, component, nullptr);
}

absl::StatusOr<v1::FleetRollout> pauseRollout(RolloutEnv& env, const std::string& component,
                                              const std::string& reason) {
  for (;;) {
    auto rd = loadRollout(env, component);
    if (!rd.ok()) return rd.status();
    if (!rd->exists) return absl::NotFoundError("no " + component + " rollout");
    if (finished(rd->r.state()) || rd->r.state() == v1::FleetRollout::PAUSED) return rd->r;
    rd->r.set_paused_from(rd->r.state());
    rd->r.set_state(v1::FleetRollout::PAUSED);
    note(env, rd->r, reason);
    auto s = storeRollout(env, *rd);
    if (absl::IsAborted(s)) continue;
    if (!s.ok()) return s;
    return rd->r;
  }
}

absl::StatusOr<v1::FleetRollout> resumeRollout(RolloutEnv& env, const std::string& component) {
  return drive(env, component, [&](Read& rd) -> absl::Status {
    if (finished(rd.r.state())) return absl::OkStatus();
    if (rd.r.state() != v1::FleetRollout::PAUSED) {
      // A takeover of a rollout whose driver died: the time nobody drove is no soak time, so
      // the wave soaks again from now and its gates start over.
      if (rd.r.state() == v1::FleetRollout::SOAKING ||
          rd.r.state() == v1::FleetRollout::REPORT_ONLY) {
        rd.r.set_phase_started(env.now());
        rd.r.clear_gate_states();
      }
      note(env, rd.r,
           text::cat("taken over by ", env.who,
                     rd.r.state() == v1::FleetRollout::SOAKING
                         ? text::cat("; wave ", waveNumber(rd.r), " soaks again")
                         : std::string()));
      return storeRollout(env, rd);
    }
    rd.r.set_state(rd.r.paused_from() == v1::FleetRollout::STATE_UNSPECIFIED
                       ? v1::FleetRollout::ROLLING
                       : rd.r.paused_from());
    rd.r.set_phase_started(env.now());
    rd.r.clear_gate_states();  // a resumed soak starts over: the time nobody drove is no soak
    note(env, rd.r, "resumed by " + env.who);
    return storeRollout(env, rd);
  });
}

absl::StatusOr<v1::FleetRollout> promoteRollout(RolloutEnv& env, const std::string& component) {
  return drive(env, component, [&](Read& rd) -> absl::Status {
    if (finished(rd.r.state()))
      return absl::FailedPreconditionError("the rollout is " + stateName(rd.r.state()));
    if (rd.r.state() == v1::FleetRollout::REPORT_ONLY ||
        rd.r.paused_from() == v1::FleetRollout::REPORT_ONLY) {
      rd.r.set_report_only_seconds(0);
      rd.r.clear_report_only_gate();
      rd.r.set_state(v1::FleetRollout::REPORT_ONLY);
    } else {
      // Soaked enough by a person's decision: this wave's gates are not asked again.
      rd.r.set_state(v1::FleetRollout::SOAKING);
      rd.r.set_promote_requested(true);
    }
    note(env, rd.r, text::cat("wave ", waveNumber(rd.r), " promoted by ", env.who));
    return storeRollout(env, rd);
  });
}

absl::StatusOr<v1::FleetRollout> abortRollout(RolloutEnv& env, const std::string& component) {
  auto lock = Lock::take(env, component);
  if (!lock.ok()) {
    if (!absl::IsFailedPrecondition(lock.status())) return lock.status();
    // Someone drives it: ask them, and wait until they did it.
    for (;;) {
      auto rd = loadRollout(env, component);
      if (!rd.ok()) return rd.status();
      if (!rd->exists) return absl::NotFoundError("no " + component + " rollout");
      if (finished(rd->r.state())) return rd->r;
      if (!rd->r.abort_requested()) {
        rd->r.set_abort_requested(true);
        auto s = storeRollout(env, *rd);
        if (!s.ok() && !absl::IsAborted(s)) return s;
        env.say("abort requested; the controller driving the rollout carries it out");
      }
      env.sleep(1);
    }
  }
  for (;;) {
    auto rd = loadRollout(env, component);
    if (!rd.ok()) return rd.status();
    if (!rd->exists) return absl::NotFoundError("no " + component + " rollout");
    if (finished(rd->r.state())) return rd->r;
    auto s = rollBack(env, *rd, v1::FleetRollout::ABORTED, "aborted by " + env.who);
    if (absl::IsAborted(s)) continue;
    if (!s.ok()) return s;
    pruneAfterRollout(*env.fleet, component, env.now(), env.say);
    return rd->r;
  }
}

}  // namespace qtls::ctl
