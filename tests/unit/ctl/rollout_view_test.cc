// What `qtlsctl rollout watch` draws and the lines it prints per change (rollout_view.h).
#include "rollout_view.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace qtls::ctl {
namespace {

bool has(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

WatchFrame soaking() {
  WatchFrame f;
  v1::FleetRollout& r = f.r;
  r.set_id("r1-abcd");
  r.set_component("remote");
  r.set_digest("sha256:0123456789abcdef0123");
  r.set_created_by("alice@h:1");
  for (const char* w : {"1", "50%", "100%"}) r.add_waves(w);
  for (const char* n : {"mx1", "mx2", "mx3", "mx4"}) r.add_nodes(n);
  r.set_wave(2);
  r.set_state(v1::FleetRollout::SOAKING);
  r.set_soak_seconds(30);
  r.set_phase_started(1000);
  auto* g = r.add_gates();
  g->set_name("tls_failures");
  g->set_max(0.02);
  g->set_count(3);
  g->set_failure_limit(1);
  auto* st = r.add_gate_states();
  st->set_name("tls_failures");
  st->set_evaluations(2);
  st->set_last_value(0.01);
  auto* e = r.add_history();
  e->set_time(1000);
  e->set_what("wave 2 (2 node(s)) ACKed; soaking 30 s");
  for (const char* n : {"mx1", "mx2", "mx3", "mx4"}) {
    WatchNode w;
    w.node = n;
    w.live = true;
    w.hasTarget = true;
    w.status.set_ack(v1::FleetStatus::ACK);
    w.status.set_time(1011);
    const bool changed = std::string(n) == "mx1" || std::string(n) == "mx2";
    w.status.set_applied_digest(changed ? r.digest() : "sha256:ffff");
    w.target.set_digest(changed ? r.digest() : "sha256:ffff");
    w.target.set_provisional(std::string(n) == "mx2");
    f.nodes.push_back(w);
  }
  f.driver = "alice@h:1";
  f.now = 1012;
  return f;
}

TEST(RolloutView, DrawsWavesNodesGatesAndTheSoakLeft) {
  const auto lines = drawFrame(soaking());
  EXPECT_EQ(lines[0], "rollout r1-abcd of remote: soaking  driven by alice@h:1") << joined(lines);
  EXPECT_TRUE(has(lines, "wave 1 (1, 1 node(s)): promoted")) << joined(lines);
  EXPECT_TRUE(has(lines, "wave 2 (50%, 2 node(s)): soaking, 18 s of 30 s left")) << joined(lines);
  EXPECT_TRUE(has(lines, "wave 3 (100%, 4 node(s)): waiting")) << joined(lines);
  const std::string all = joined(lines);
  EXPECT_NE(
      all.find(
          "mx2                  2    live  ACK       sha256:0123456789ab sha256:0123456789ab*"),
      std::string::npos)
      << all;
  EXPECT_NE(all.find("mx4                  3    live  ACK       sha256:ffff"), std::string::npos)
      << all;
  EXPECT_NE(all.find("tls_failures         0.01 <= 0.02  values 2 of 3, failures 0 of 1, errors "
                     "0, no data 0"),
            std::string::npos)
      << all;
}

TEST(RolloutView, ALostNodeShowsGoneAndDoneShowsEveryWavePromoted) {
  WatchFrame f = soaking();
  f.nodes[1].live = false;
  std::string all = joined(drawFrame(f));
  EXPECT_NE(all.find("mx2                  2    gone  -         -"), std::string::npos) << all;
  f.r.set_wave(3);
  f.r.set_state(v1::FleetRollout::DONE);
  f.driver.clear();
  const auto lines = drawFrame(f);
  EXPECT_EQ(lines[0], "rollout r1-abcd of remote: done  (nobody drives it)");
  EXPECT_TRUE(has(lines, "wave 3 (100%, 4 node(s)): promoted")) << joined(lines);
  f.r.set_wave(2);
  f.r.set_state(v1::FleetRollout::ROLLED_BACK);
  const auto back = drawFrame(f);
  EXPECT_TRUE(has(back, "wave 1 (1, 1 node(s)): rolled-back")) << joined(back);
  EXPECT_TRUE(has(back, "wave 2 (50%, 2 node(s)): rolled-back")) << joined(back);
  EXPECT_TRUE(has(back, "wave 3 (100%, 4 node(s)): never started")) << joined(back);
}

TEST(RolloutView, ChangesAreOneLineEach) {
  const WatchFrame before = soaking();
  auto first = frameChanges(nullptr, before);
  EXPECT_TRUE(has(first, "00:16:40 wave 2 (2 node(s)) ACKed; soaking 30 s")) << joined(first);
  EXPECT_TRUE(has(first, "00:16:52 node mx1: ACK on the new policy")) << joined(first);
  EXPECT_TRUE(has(first, "00:16:52 node mx3: ACK on sha256:ffff")) << joined(first);

  WatchFrame after = before;
  after.now = 1013;
  EXPECT_TRUE(frameChanges(&before, after).empty()) << joined(frameChanges(&before, after));

  after.nodes[0].live = false;
  after.r.mutable_gate_states(0)->set_evaluations(3);
  after.r.mutable_gate_states(0)->set_last_value(0.5);
  after.r.mutable_gate_states(0)->set_failures(1);
  auto* e = after.r.add_history();
  e->set_time(1013);
  e->set_what("wave 2: gate tls_failures failed: 0.5 > 0.02");
  const auto lines = frameChanges(&before, after);
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "00:16:53 wave 2: gate tls_failures failed: 0.5 > 0.02",
                       "00:16:53 node mx1: no live status lease",
                       "00:16:53 gate tls_failures         0.5 > 0.02  values 3 of 3, failures 1 "
                       "of 1, errors 0, no data 0"}));
}

}  // namespace
}  // namespace qtls::ctl
