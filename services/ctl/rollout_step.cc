// One step of the rollout state machine (rollout_step.h).
#include "rollout_step.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "rollout_liveness.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

std::string secs(double s) { return asWritten(s); }

// Why a gate failed: its value over the maximum, or its query errors.
std::string gateFailure(const v1::FleetGate& g, const v1::FleetGateState& st) {
  if (st.failures() >= std::max(1u, g.failure_limit()))
    return text::cat("gate ", g.name(), " failed: ", secs(st.last_value()), " > ", secs(g.max()));
  return text::cat("gate ", g.name(), " failed: ", st.errors(),
                   " query error(s), the last: ", st.last_error());
}

// What a paused rollout's message tells the person who must decide.
constexpr char kPausedChoices[] =
    "`qtlsctl rollout resume` soaks the wave again and asks its gates, `qtlsctl rollout "
    "promote` promotes it without them, `qtlsctl rollout abort` rolls it back";

// The nodes up to and including wave `number` (1-based).
std::vector<std::string> waveNodes(const v1::FleetRollout& r, uint32_t number) {
  auto sizes = waveSizes({r.waves().begin(), r.waves().end()}, r.nodes_size());
  const size_t n =
      sizes.ok() ? (*sizes)[std::min<size_t>(std::max(1u, number) - 1, sizes->size() - 1)] : 0;
  return {r.nodes().begin(), r.nodes().begin() + static_cast<long>(n)};
}

// `rollback`: why this target undoes the rollout ("" for a forward target).
std::string targetJson(const v1::FleetRollout& r, const std::string& digest, bool provisional,
                       const std::string& rollback = "") {
  v1::FleetTarget t;
  t.set_digest(digest);
  t.set_rollout(r.id());
  t.set_wave(waveNumber(r));
  t.set_provisional(provisional);
  t.set_rollback(rollback);
  return fleet::toJson(t);
}

absl::Status clearCandidates(RolloutEnv& env, const v1::FleetRollout& r) {
  for (const std::string& n : r.nodes())
    if (auto s = env.fleet->etcd().remove(env.fleet->layout.candidate(r.component(), n)); !s.ok())
      return s;
  return absl::OkStatus();
}

// The wave's nodes each have a status answering the rollout's digest: all ACK (true), some
// still pending (false), or a NACK (an error naming the node).
absl::StatusOr<bool> acked(RolloutEnv& env, const v1::FleetRollout& r,
                           const std::vector<std::string>& nodes, std::string* missing) {
  auto view = fleetView(*env.fleet, r.component());
  if (!view.ok()) return view.status();
  std::map<std::string, const NodeView*> by;
  for (const NodeView& n : *view) by[n.node] = &n;
  missing->clear();
  for (const std::string& node : nodes) {
    auto it = by.find(node);
    const NodeView* n = it == by.end() ? nullptr : it->second;
    if (n && n->hasStatus && n->status.target_digest() == r.digest()) {
      if (n->status.ack() == v1::FleetStatus::NACK)
        return absl::InvalidArgumentError(
            text::cat("node ", node, " refused the policy: ", n->status.error()));
      if (n->status.ack() == v1::FleetStatus::ACK) continue;
    }
    *missing += (missing->empty() ? "" : ",") + node;
  }
  return missing->empty();
}

}  // namespace

bool finished(State s) {
  return s == v1::FleetRollout::DONE || s == v1::FleetRollout::ROLLED_BACK ||
         s == v1::FleetRollout::ABORTED;
}

void note(RolloutEnv& env, v1::FleetRollout& r, const std::string& what) {
  auto* e = r.add_history();
  e->set_time(env.now());
  e->set_what(what);
  r.set_reason(what);
  env.say(text::cat("rollout ", r.id(), ": ", what));
}

// Every changed node back on the target it had, candidates cleared, then the final state.
absl::Status rollBack(RolloutEnv& env, Read& rd, State final, const std::string& why) {
  v1::FleetRollout& r = rd.r;
  // Which nodes run the rollout's policy now (changed back below), and which never applied
  // it (refused, or not reached): their target is restored all the same.
  std::set<std::string> applied;
  if (auto view = fleetView(*env.fleet, r.component()); view.ok())
    for (const NodeView& n : *view)
      if (n.hasStatus && n.status.applied_digest() == r.digest()) applied.insert(n.node);
  size_t changedBack = 0;
  for (const auto& [node, previous] : r.previous()) {
    absl::Status s = previous.empty()
                         ? env.fleet->etcd().remove(env.fleet->layout.target(r.component(), node))
                         : env.fleet->etcd().put(env.fleet->layout.target(r.component(), node),
                                                 targetJson(r, previous, false, why));
    if (!s.ok()) return s;
    changedBack += applied.count(node);
  }
  if (auto s = clearCandidates(env, r); !s.ok()) return s;
  r.set_state(final);
  r.set_phase_started(env.now());
  r.set_abort_requested(false);
  const size_t untouched = static_cast<size_t>(r.previous_size()) - changedBack;
  note(env, r,
       text::cat(why, "; ", changedBack, " node(s) given their previous policy back",
                 untouched ? text::cat(", ", untouched,
                                       " that never applied it had their target restored")
                           : std::string()));
  return storeRollout(env, rd);
}

namespace {

// Report-only: every node evaluates the candidate beside its policy; a gate on the
// would-fail counts (or the time given) decides whether wave 1 starts.
absl::StatusOr<bool> reportOnly(RolloutEnv& env, Read& rd, double now) {
  v1::FleetRollout& r = rd.r;
  v1::FleetCandidate c;
  c.set_digest(r.digest());
  c.set_rollout(r.id());
  for (const std::string& n : r.nodes())
    if (auto s =
            env.fleet->etcd().put(env.fleet->layout.candidate(r.component(), n), fleet::toJson(c));
        !s.ok())
      return s;
  if (r.report_only_gate().query().empty() || r.prometheus().empty()) {
    if (now < r.phase_started() + r.report_only_seconds()) {
      env.sleep(std::min(r.interval_seconds(), r.phase_started() + r.report_only_seconds() - now));
      return true;
    }
  } else {
    if (r.gate_states_size() == 0) r.add_gate_states();
    auto* st = r.mutable_gate_states(0);
    const std::vector<std::string> all(r.nodes().begin(), r.nodes().end());
    const auto verdict = evaluateGate(
        r.report_only_gate(), *st, env.prometheus(r.prometheus()),
        gateQuery(r.report_only_gate(), all, {}, std::max(30.0, 2 * r.interval_seconds())));
    if (verdict == GateVerdict::kFailed) {
      if (auto s = rollBack(env, rd, v1::FleetRollout::ROLLED_BACK,
                            text::cat("report-only: ", gateFailure(r.report_only_gate(), *st)));
          !s.ok())
        return s;
      return false;
    }
    if (now >= r.phase_started() + r.report_only_seconds() && verdict != GateVerdict::kPassed) {
      r.set_paused_from(r.state());
      r.set_state(v1::FleetRollout::PAUSED);
      note(env, r,
           text::cat("report-only gate inconclusive: ", st->evaluations(), " value(s) of ",
                     r.report_only_gate().count(), " needed in the time given; promote or abort"));
      if (auto s = storeRollout(env, rd); !s.ok()) return s;
      return false;
    }
    if (now < r.phase_started() + r.report_only_seconds() || verdict != GateVerdict::kPassed) {
      if (auto s = storeRollout(env, rd); !s.ok()) return s;
      env.sleep(r.interval_seconds());
      return true;
    }
  }
  if (auto s = clearCandidates(env, r); !s.ok()) return s;
  r.set_state(v1::FleetRollout::ROLLING);
  r.set_wave(1);
  r.set_phase_started(now);
  r.clear_gate_states();
  note(env, r, "report-only evaluation passed; wave 1 starts");
  if (auto s = storeRollout(env, rd); !s.ok()) return s;
  return true;
}

// Records in the rollout each wave node's target before the rollout's own: true when any was
// recorded (the rollout must be stored before any target changes).
absl::StatusOr<bool> recordPrevious(RolloutEnv& env, v1::FleetRollout& r,
                                    const std::vector<std::string>& nodes) {
  bool recorded = false;
  for (const std::string& n : nodes) {
    if (r.previous().count(n)) continue;
    auto t = env.fleet->etcd().get(env.fleet->layout.target(r.component(), n));
    if (!t.ok()) return t.status();
    v1::FleetTarget old;
    if (*t) fleet::fromJson((*t)->value, &old, (*t)->key).IgnoreError();
    if (old.digest() == r.digest() && old.rollout() == r.id()) continue;
    (*r.mutable_previous())[n] = old.digest();
    recorded = true;
  }
  return recorded;
}

// Each wave node's target becomes the rollout's (provisional) until every one ACKs.
absl::StatusOr<bool> rolling(RolloutEnv& env, Read& rd, double now) {
  v1::FleetRollout& r = rd.r;
  const std::vector<std::string> nodes = waveNodes(r, waveNumber(r));
  // Previous targets first, written before any target changes: a rollback after a crash
  // anywhere below knows what to restore.
  auto recorded = recordPrevious(env, r, nodes);
  if (!recorded.ok()) return recorded.status();
  if (*recorded) {
    if (auto s = storeRollout(env, rd); !s.ok()) return s;
    return true;
  }
  std::vector<std::pair<std::string, std::string>> writes;
  for (const std::string& n : nodes) {
    auto t = env.fleet->etcd().get(env.fleet->layout.target(r.component(), n));
    if (!t.ok()) return t.status();
    v1::FleetTarget cur;
    if (*t) fleet::fromJson((*t)->value, &cur, (*t)->key).IgnoreError();
    if (cur.digest() != r.digest() || cur.rollout() != r.id())
      writes.emplace_back(env.fleet->layout.target(r.component(), n),
                          targetJson(r, r.digest(), true));
  }
  if (auto s = env.fleet->etcd().putMany(writes); !s.ok()) return s;
  std::string missing;
  auto all = acked(env, r, nodes, &missing);
  if (!all.ok()) {
    if (auto s =
            rollBack(env, rd, v1::FleetRollout::ROLLED_BACK,
                     text::cat("wave ", waveNumber(r), ": ", std::string(all.status().message())));
        !s.ok())
      return s;
    return false;
  }
  if (!*all) {
    if (now > r.phase_started() + r.ack_timeout_seconds()) {
      r.set_paused_from(v1::FleetRollout::ROLLING);
      r.set_state(v1::FleetRollout::PAUSED);
      note(env, r,
           text::cat("wave ", waveNumber(r), ": no ACK within ", secs(r.ack_timeout_seconds()),
                     " s from ", missing, "; resume to wait again, or abort"));
      if (auto s = storeRollout(env, rd); !s.ok()) return s;
      return false;
    }
    env.sleep(std::min(1.0, r.interval_seconds()));
    return true;
  }
  r.set_state(v1::FleetRollout::SOAKING);
  r.set_phase_started(now);
  r.clear_gate_states();
  note(env, r,
       text::cat("wave ", waveNumber(r), " (", nodes.size(), " node(s)) ACKed; soaking ",
                 secs(r.soak_seconds()), " s"));
  if (auto s = storeRollout(env, rd); !s.ok()) return s;
  return true;
}

// The soak's gates, asked from one interval into the soak on (rates need the new policy's
// samples). A failed gate has rolled the rollout back.
struct GateRound {
  bool evaluated = false;
  bool allPassed = true;
  bool rolledBack = false;
  std::string short_;  // gates still without enough values
};
absl::StatusOr<GateRound> askGates(RolloutEnv& env, Read& rd, const std::vector<std::string>& nodes,
                                   double now) {
  v1::FleetRollout& r = rd.r;
  std::vector<std::string> baseline;
  for (const std::string& n : r.nodes())
    if (std::find(nodes.begin(), nodes.end(), n) == nodes.end()) baseline.push_back(n);
  GateRound out;
  const bool gated = !r.prometheus().empty() && !r.promote_requested();
  out.evaluated = gated && now >= r.phase_started() + r.interval_seconds();
  if (gated && !out.evaluated) out.allPassed = false;
  if (!out.evaluated) return out;
  for (int i = 0; i < r.gates_size(); ++i) {
    const v1::FleetGate& g = r.gates(i);
    while (r.gate_states_size() <= i) r.add_gate_states();
    v1::FleetGateState* st = r.mutable_gate_states(i);
    const auto verdict =
        evaluateGate(g, *st, env.prometheus(r.prometheus()),
                     gateQuery(g, nodes, baseline, std::max(30.0, 2 * r.interval_seconds())));
    if (verdict == GateVerdict::kFailed) {
      if (auto s = rollBack(env, rd, v1::FleetRollout::ROLLED_BACK,
                            text::cat("wave ", waveNumber(r), ": ", gateFailure(g, *st)));
          !s.ok())
        return s;
      out.rolledBack = true;
      return out;
    }
    if (verdict != GateVerdict::kPassed) {
      out.allPassed = false;
      out.short_ += text::cat(out.short_.empty() ? "" : ", ", g.name(), " (", st->evaluations(),
                              " of ", g.count(), ", ", st->no_data(), " without data)");
    }
  }
  return out;
}

// Liveness is part of every gate: a node lost during the soak never promotes its wave. The
// step's answer when the check decides it (ask again, rolled back, paused); nullopt: promote.
absl::StatusOr<std::optional<bool>> livenessStops(RolloutEnv& env, Read& rd,
                                                  const std::vector<std::string>& nodes) {
  v1::FleetRollout& r = rd.r;
  std::optional<PromQuery> prom;
  if (!r.prometheus().empty()) prom = env.prometheus(r.prometheus());
  auto lost = lostNodes(*env.fleet, r.component(), r.digest(), nodes, prom ? &*prom : nullptr,
                        r.phase_started());
  if (!lost.ok()) {  // etcd or Prometheus did not answer: ask again, never promote
    env.sleep(r.interval_seconds());
    return std::optional<bool>(true);
  }
  if (lost->empty()) return std::optional<bool>();
  const std::string why =
      text::cat("wave ", waveNumber(r), ": node(s) lost during the soak: ", describeLost(*lost));
  if (r.on_node_loss() == "rollback") {
    if (auto s = rollBack(env, rd, v1::FleetRollout::ROLLED_BACK, why); !s.ok()) return s;
    return std::optional<bool>(false);
  }
  r.set_paused_from(v1::FleetRollout::SOAKING);
  r.set_state(v1::FleetRollout::PAUSED);
  note(env, r, text::cat(why, "; ", kPausedChoices));
  if (auto s = storeRollout(env, rd); !s.ok()) return s;
  return std::optional<bool>(false);
}

// The wave's targets are no longer provisional; the next wave starts, or the rollout is done.
absl::StatusOr<bool> promote(RolloutEnv& env, Read& rd, const std::vector<std::string>& nodes,
                             double now) {
  v1::FleetRollout& r = rd.r;
  std::vector<std::pair<std::string, std::string>> writes;
  for (const std::string& n : nodes)
    writes.emplace_back(env.fleet->layout.target(r.component(), n),
                        targetJson(r, r.digest(), false));
  if (auto s = env.fleet->etcd().putMany(writes); !s.ok()) return s;
  const uint32_t promoted = waveNumber(r);
  const bool last = static_cast<int>(promoted) >= r.waves_size();
  if (!last) r.set_wave(promoted + 1);  // done: the number stays the last wave's
  r.set_promote_requested(false);
  r.clear_gate_states();
  r.set_phase_started(now);
  r.set_state(last ? v1::FleetRollout::DONE : v1::FleetRollout::ROLLING);
  note(env, r,
       r.state() == v1::FleetRollout::DONE
           ? text::cat("wave ", promoted, " promoted; every node runs ", r.digest())
           : text::cat("wave ", promoted, " promoted; wave ", promoted + 1, " starts"));
  if (auto s = storeRollout(env, rd); !s.ok()) return s;
  return r.state() != v1::FleetRollout::DONE;
}

absl::StatusOr<bool> soaking(RolloutEnv& env, Read& rd, double now) {
  v1::FleetRollout& r = rd.r;
  const std::vector<std::string> nodes = waveNodes(r, waveNumber(r));
  auto round = askGates(env, rd, nodes, now);
  if (!round.ok()) return round.status();
  if (round->rolledBack) return false;
  const bool soaked = now >= r.phase_started() + r.soak_seconds();
  if (soaked && !round->allPassed && round->evaluated && !round->short_.empty() &&
      now >= r.phase_started() + r.soak_seconds() +
                 r.interval_seconds() * std::max<uint32_t>(1, r.gates(0).count())) {
    // The soak is over and the gates had their chances: no evidence is no promotion.
    r.set_paused_from(v1::FleetRollout::SOAKING);
    r.set_state(v1::FleetRollout::PAUSED);
    note(env, r,
         text::cat("wave ", waveNumber(r), ": inconclusive, not enough values: ", round->short_,
                   "; ", kPausedChoices));
    if (auto s = storeRollout(env, rd); !s.ok()) return s;
    return false;
  }
  if (!r.promote_requested() && (!soaked || !round->allPassed)) {
    if (auto s = storeRollout(env, rd); !s.ok()) return s;
    env.sleep(
        std::min(r.interval_seconds(), std::max(0.2, r.phase_started() + r.soak_seconds() - now)));
    return true;
  }
  // `rollout promote` (a person's decision) skips liveness with the gates.
  if (!r.promote_requested()) {
    auto stop = livenessStops(env, rd, nodes);
    if (!stop.ok()) return stop.status();
    if (*stop) return **stop;
  }
  return promote(env, rd, nodes, now);
}

}  // namespace

// One step of the state machine; returns false when the driver should stop.
absl::StatusOr<bool> step(RolloutEnv& env, Read& rd) {
  v1::FleetRollout& r = rd.r;
  const double now = env.now();
  if (r.abort_requested()) {
    if (auto s = rollBack(env, rd, v1::FleetRollout::ABORTED, "aborted by an operator"); !s.ok())
      return s;
    return false;
  }
  switch (r.state()) {
    case v1::FleetRollout::REPORT_ONLY:
      return reportOnly(env, rd, now);
    case v1::FleetRollout::ROLLING:
      return rolling(env, rd, now);
    case v1::FleetRollout::SOAKING:
      return soaking(env, rd, now);
    default:
      return false;  // paused or finished
  }
}

}  // namespace qtls::ctl
