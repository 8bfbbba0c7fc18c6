// qtlsctl rollout start | status | watch | pause | resume | abort | promote (docs/rollouts.md).
#include "rollout_cmd.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "client.h"
#include "rollout.h"
#include "rollout_watch.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

std::vector<std::string> list(const std::string& v) {
  std::vector<std::string> out;
  for (std::string_view p : text::split(v, ','))
    if (!p.empty()) out.emplace_back(p);
  return out;
}

int finish(const absl::StatusOr<v1::FleetRollout>& r, bool json) {
  if (!r.ok()) return failed(r.status());
  if (json) {
    std::printf("%s\n", fleet::toJson(*r).c_str());
  } else {
    std::printf("rollout %s: %s: %s\n", r->id().c_str(), stateName(r->state()).c_str(),
                r->reason().c_str());
  }
  return r->state() == v1::FleetRollout::DONE ? kOk : kRolloutStopped;
}

int start(RolloutEnv& env, Args& a, bool json) {
  RolloutSpec spec;
  std::string from;
  std::vector<std::string> gates;
  std::string reportOnlyGate;
  unsigned count = 3, failureLimit = 1;
  bool detach = false;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--component")
      spec.component = a.next(f);
    else if (f == "--from")
      from = a.next(f);
    else if (f == "--digest")
      spec.digest = a.next(f);
    else if (f == "--waves")
      spec.waves = list(a.next(f));
    else if (f == "--soak")
      spec.soakSeconds = duration(f, a.next(f));
    else if (f == "--report-only-first")
      spec.reportOnlySeconds = duration(f, a.next(f));
    else if (f == "--ack-timeout")
      spec.ackTimeoutSeconds = duration(f, a.next(f));
    else if (f == "--interval")
      spec.intervalSeconds = std::max(0.2, duration(f, a.next(f)));
    else if (f == "--prometheus")
      spec.prometheus = a.next(f);
    else if (f == "--gate")
      gates.push_back(a.next(f));
    else if (f == "--report-only-gate")
      reportOnlyGate = a.next(f);
    else if (f == "--count")
      count = static_cast<unsigned>(number(f, a.next(f)));
    else if (f == "--failure-limit")
      failureLimit = static_cast<unsigned>(number(f, a.next(f)));
    else if (f == "--nodes")
      spec.nodes = list(a.next(f));
    else if (f == "--on-node-loss") {
      spec.onNodeLoss = a.next(f);
      if (spec.onNodeLoss != "pause" && spec.onNodeLoss != "rollback")
        usage("rollout start: --on-node-loss pause|rollback");
    } else if (f == "--detach")
      detach = true;
    else
      usage("rollout start: unknown argument " + f);
  }
  if (!fleet::validComponent(spec.component)) usage("rollout start: --component remote|smtpd");
  if (from.empty() == spec.digest.empty()) usage("rollout start: --from DIR or --digest D");
  if (!gates.empty() && spec.prometheus.empty()) usage("rollout start: --gate needs --prometheus");
  if (!reportOnlyGate.empty() && spec.reportOnlySeconds <= 0)
    usage("rollout start: --report-only-gate needs --report-only-first");
  // With a Prometheus to ask, the report-only phase is judged, by would_fail unless told.
  if (spec.reportOnlySeconds > 0 && !spec.prometheus.empty()) {
    auto gate = parseGate(reportOnlyGate.empty() ? "would_fail" : reportOnlyGate, spec.component,
                          count, failureLimit, spec.intervalSeconds, true);
    if (!gate.ok()) usage(std::string(gate.status().message()));
    spec.reportOnlyGate = *gate;
  } else if (!reportOnlyGate.empty()) {
    usage("rollout start: --report-only-gate needs --prometheus");
  }
  for (const std::string& g : gates) {
    auto gate = parseGate(g, spec.component, count, failureLimit, spec.intervalSeconds);
    if (!gate.ok()) usage(std::string(gate.status().message()));
    spec.gates.push_back(*gate);
  }
  if (!from.empty()) {
    auto digest = storeBundle(*env.fleet, spec.component, from);
    if (!digest.ok()) return failed(digest.status());
    spec.digest = *digest;
  }
  auto r = startRollout(env, spec);
  if (!r.ok()) return failed(r.status());
  if (detach) {
    std::printf("rollout %s started; drive it with: qtlsctl rollout resume --component %s\n",
                r->id().c_str(), spec.component.c_str());
    return kOk;
  }
  return finish(driveRollout(env, spec.component), json);
}

int status(RolloutEnv& env, const std::string& component, bool json) {
  auto r = readRollout(env, component);
  if (!r.ok()) return failed(r.status());
  if (json) {
    std::printf("%s\n", fleet::toJson(*r).c_str());
    return statusExit(r->state());
  }
  std::printf("rollout %s of %s: %s\n", r->id().c_str(), r->digest().c_str(),
              stateName(r->state()).c_str());
  std::printf("wave %u of %d (", waveNumber(*r), r->waves_size());
  for (int i = 0; i < r->waves_size(); ++i) std::printf("%s%s", i ? "," : "", r->waves(i).c_str());
  std::printf("), %d node(s), started by %s\n", r->nodes_size(), r->created_by().c_str());
  for (const auto& g : r->gate_states())
    std::printf("gate %s: %u evaluation(s), %u failure(s), %u error(s), last %g\n",
                g.name().c_str(), g.evaluations(), g.failures(), g.errors(), g.last_value());
  for (const auto& e : r->history()) {
    const std::time_t t = static_cast<std::time_t>(e.time());
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    std::printf("  %s  %s\n", when, e.what().c_str());
  }
  return statusExit(r->state());
}

}  // namespace

int rolloutCommand(FleetContext& f, const std::string& sub, Args& a, bool json) {
  RolloutEnv env = defaultEnv(f);
  if (sub == "start") return start(env, a, json);
  std::string component, reason = "paused by " + env.who;
  bool plain = false;
  while (a.more()) {
    std::string flag = a.next("");
    if (flag == "--component")
      component = a.next(flag);
    else if (flag == "--plain" && sub == "watch")
      plain = true;
    else if (flag == "--reason" && sub == "pause")
      reason = a.next(flag) + " (" + env.who + ")";
    else
      usage("rollout " + sub + ": unknown argument " + flag);
  }
  if (!fleet::validComponent(component)) usage("rollout " + sub + ": --component remote|smtpd");
  if (sub == "status") return status(env, component, json);
  if (sub == "watch") return watchRollout(env, component, plain);
  if (sub == "pause") {
    auto r = pauseRollout(env, component, reason);
    if (!r.ok()) return failed(r.status());
    std::printf("rollout %s: %s\n", r->id().c_str(), stateName(r->state()).c_str());
    return kOk;
  }
  if (sub == "resume") return finish(resumeRollout(env, component), json);
  if (sub == "promote") return finish(promoteRollout(env, component), json);
  if (sub == "abort") {
    auto r = abortRollout(env, component);
    if (!r.ok()) return failed(r.status());
    std::printf("rollout %s: %s: %s\n", r->id().c_str(), stateName(r->state()).c_str(),
                r->reason().c_str());
    return kOk;
  }
  usage("rollout: start, status, watch, pause, resume, abort or promote, not \"" + sub + "\"");
}

}  // namespace qtls::ctl
