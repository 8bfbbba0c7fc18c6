// What `qtlsctl rollout watch` shows (rollout_view.h).
#include "rollout_view.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "rollout_rules.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

std::string num(double v) { return asWritten(v); }

std::string shortOf(const std::string& digest) {
  return digest.empty() ? "-" : digest.substr(0, std::min<size_t>(19, digest.size()));
}

std::string clock(double t) {
  const std::time_t s = static_cast<std::time_t>(t);
  char b[16];
  std::strftime(b, sizeof b, "%H:%M:%S", std::gmtime(&s));
  return b;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// Which wave (1-based) first covers each node.
std::map<std::string, uint32_t> waveOf(const v1::FleetRollout& r) {
  std::map<std::string, uint32_t> out;
  auto sizes = waveSizes({r.waves().begin(), r.waves().end()}, r.nodes_size());
  if (!sizes.ok()) return out;
  size_t from = 0;
  for (size_t w = 0; w < sizes->size(); ++w) {
    for (size_t i = from; i < (*sizes)[w]; ++i) out[r.nodes(static_cast<int>(i))] = w + 1;
    from = std::max(from, (*sizes)[w]);
  }
  return out;
}

// A wave's state in words: promoted, the current phase, or waiting.
std::string waveState(const WatchFrame& f, uint32_t wave) {
  const v1::FleetRollout& r = f.r;
  const uint32_t cur = waveNumber(r);
  const bool done = r.state() == v1::FleetRollout::DONE;
  if (r.state() == v1::FleetRollout::ROLLED_BACK || r.state() == v1::FleetRollout::ABORTED)
    return wave <= cur ? stateName(r.state()) : "never started";
  if (wave < cur || (done && wave == cur)) return "promoted";
  if (wave > cur || r.state() == v1::FleetRollout::REPORT_ONLY) return "waiting";
  switch (r.state()) {
    case v1::FleetRollout::ROLLING:
      return "writing targets, waiting for ACKs";
    case v1::FleetRollout::SOAKING: {
      const double left = std::max(0.0, r.phase_started() + r.soak_seconds() - f.now);
      return text::cat("soaking, ", num(std::ceil(left)), " s of ", num(r.soak_seconds()),
                       " s left");
    }
    default:
      return stateName(r.state());
  }
}

std::string gateLine(const v1::FleetGate& g, const v1::FleetGateState* st) {
  if (st == nullptr) return text::cat(pad(g.name(), 20), " not evaluated yet, max ", num(g.max()));
  return text::cat(
      pad(g.name(), 20), " ", st->evaluations() ? num(st->last_value()) : std::string("no value"),
      st->evaluations() && st->last_value() > g.max() ? " > " : " <= ", num(g.max()), "  values ",
      st->evaluations(), " of ", g.count(), ", failures ", st->failures(), " of ",
      std::max(1u, g.failure_limit()), ", errors ", st->errors(), ", no data ", st->no_data());
}

const v1::FleetGateState* stateOf(const v1::FleetRollout& r, const std::string& gate) {
  for (const auto& st : r.gate_states())
    if (st.name() == gate) return &st;
  return nullptr;
}

std::string nodeWords(const WatchNode& n, const std::string& rolloutDigest) {
  if (!n.live) return "no live status lease";
  const std::string ack = v1::FleetStatus::Ack_Name(n.status.ack());
  return text::cat(ack,
                   n.status.applied_digest() == rolloutDigest
                       ? " on the new policy"
                       : " on " + shortOf(n.status.applied_digest()),
                   n.status.ack() == v1::FleetStatus::NACK ? ": " + n.status.error() : "");
}

}  // namespace

std::string stateName(v1::FleetRollout::State s) {
  std::string n = v1::FleetRollout::State_Name(s);
  for (char& c : n) c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return n;
}

uint32_t waveNumber(const v1::FleetRollout& r) { return std::max(1u, r.wave()); }

std::string asWritten(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

std::vector<std::string> drawFrame(const WatchFrame& f) {
  const v1::FleetRollout& r = f.r;
  std::vector<std::string> out;
  out.push_back(text::cat("rollout ", r.id(), " of ", r.component(), ": ", stateName(r.state()),
                          f.driver.empty() ? "  (nobody drives it)" : "  driven by " + f.driver));
  out.push_back(text::cat("policy ", r.digest(), ", started by ", r.created_by()));
  if (r.state() == v1::FleetRollout::REPORT_ONLY) {
    const double left = std::max(0.0, r.phase_started() + r.report_only_seconds() - f.now);
    out.push_back(text::cat("report-only: ", num(std::ceil(left)), " s of ",
                            num(r.report_only_seconds()), " s left"));
  }
  auto sizes = waveSizes({r.waves().begin(), r.waves().end()}, r.nodes_size());
  for (int w = 0; w < r.waves_size(); ++w)
    out.push_back(text::cat("wave ", w + 1, " (", r.waves(w), ", ",
                            sizes.ok() ? (*sizes)[static_cast<size_t>(w)] : 0,
                            " node(s)): ", waveState(f, static_cast<uint32_t>(w + 1))));
  out.push_back(text::cat(pad("NODE", 20), " ", pad("WAVE", 4), " ", pad("LEASE", 5), " ",
                          pad("ACK", 9), " ", pad("APPLIED", 19), " ", pad("TARGET", 20), " ",
                          pad("AGE", 5), " ERROR"));
  const auto waves = waveOf(r);
  for (const WatchNode& n : f.nodes) {
    auto w = waves.find(n.node);
    const std::string ack = n.live ? v1::FleetStatus::Ack_Name(n.status.ack()) : std::string("-");
    std::string target = n.hasTarget ? shortOf(n.target.digest()) : "-";
    if (n.hasTarget && n.target.provisional()) target += "*";
    out.push_back(text::cat(
        pad(n.node, 20), " ", pad(w == waves.end() ? "-" : std::to_string(w->second), 4), " ",
        pad(n.live ? "live" : "gone", 5), " ", pad(ack, 9), " ",
        pad(n.live ? shortOf(n.status.applied_digest()) : "-", 19), " ", pad(target, 20), " ",
        pad(n.live ? num(std::max(0.0, std::round(f.now - n.status.time()))) + "s" : "-", 5), " ",
        n.live ? n.status.error() : std::string()));
    while (out.back().back() == ' ') out.back().pop_back();
  }
  out.push_back("(* provisional: the wave is not promoted yet)");
  if (r.state() == v1::FleetRollout::REPORT_ONLY && !r.report_only_gate().name().empty()) {
    out.push_back(gateLine(r.report_only_gate(), stateOf(r, r.report_only_gate().name())));
  } else {
    for (const v1::FleetGate& g : r.gates()) out.push_back(gateLine(g, stateOf(r, g.name())));
  }
  if (r.history_size())
    out.push_back(text::cat("last: ", clock(r.history(r.history_size() - 1).time()), " ",
                            r.history(r.history_size() - 1).what()));
  return out;
}

std::vector<std::string> frameChanges(const WatchFrame* before, const WatchFrame& after) {
  std::vector<std::string> out;
  const v1::FleetRollout& r = after.r;
  const bool same = before && before->r.id() == r.id();
  const int seen = same ? before->r.history_size() : 0;
  for (int i = seen; i < r.history_size(); ++i)
    out.push_back(text::cat(clock(r.history(i).time()), " ", r.history(i).what()));
  const std::string at = clock(after.now) + " ";
  if (!same || before->driver != after.driver)
    out.push_back(at + (after.driver.empty() ? std::string("nobody drives the rollout")
                                             : "driven by " + after.driver));
  std::map<std::string, const WatchNode*> was;
  if (same)
    for (const WatchNode& n : before->nodes) was[n.node] = &n;
  for (const WatchNode& n : after.nodes) {
    auto it = was.find(n.node);
    const std::string now = nodeWords(n, r.digest());
    if (it == was.end() || nodeWords(*it->second, r.digest()) != now)
      out.push_back(text::cat(at, "node ", n.node, ": ", now));
  }
  std::vector<const v1::FleetGate*> gates;
  if (!r.report_only_gate().name().empty()) gates.push_back(&r.report_only_gate());
  for (const v1::FleetGate& g : r.gates()) gates.push_back(&g);
  for (const v1::FleetGate* gate : gates) {
    const v1::FleetGate& g = *gate;
    const v1::FleetGateState* st = stateOf(r, g.name());
    const v1::FleetGateState* old = same ? stateOf(before->r, g.name()) : nullptr;
    if (st == nullptr) continue;
    if (old == nullptr || old->evaluations() != st->evaluations() ||
        old->errors() != st->errors() || old->no_data() != st->no_data())
      out.push_back(at + "gate " + gateLine(g, st));
  }
  return out;
}

}  // namespace qtls::ctl
