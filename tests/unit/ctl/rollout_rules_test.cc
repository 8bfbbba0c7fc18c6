// The rules a rollout follows: wave sizes, gate specs, query substitution, and a gate's
// verdicts under Argo Rollouts' semantics, with a fake Prometheus.
#include "rollout_rules.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>

namespace qtls::ctl {
namespace {

TEST(WaveSizes, CountsAndPercentagesAreCumulative) {
  auto w = waveSizes({"1", "5%", "25%", "100%"}, 50);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(*w, (std::vector<size_t>{1, 3, 13, 50}));  // 5% of 50 is 2.5: rounded up
  EXPECT_EQ(*waveSizes({"1", "100%"}, 1), (std::vector<size_t>{1, 1}));
  EXPECT_EQ(*waveSizes({"2", "2", "100%"}, 6), (std::vector<size_t>{2, 2, 6}));
}

TEST(WaveSizes, RefusedWithTheReason) {
  EXPECT_EQ(waveSizes({"1", "50%"}, 6).status().message(),
            "--waves: the last wave must cover every node (6); end with 100%");
  EXPECT_EQ(waveSizes({"3", "1", "100%"}, 6).status().message(),
            "--waves: each wave covers at least the one before");
  EXPECT_EQ(waveSizes({"x"}, 6).status().message(), "--waves: want counts or percentages, not x");
  EXPECT_EQ(waveSizes({"150%"}, 6).status().message(), "--waves: bad percentage 150%");
}

TEST(ParseGate, BuiltinsCustomAndErrors) {
  auto g = parseGate("tls_failures", "remote", 3, 1, 10);
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ(g->max(), 0.02);
  EXPECT_NE(g->query().find("qtls_remote_tls_failures_total{qtls_node=~\"$nodes\"}"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(parseGate("deferrals:0.1", "remote", 3, 1, 10)->max(), 0.1);
  // A series with matchers of its own gets the node selector inside its braces.
  EXPECT_NE(parseGate("deferrals", "remote", 3, 1, 10)
                ->query()
                .find("sum(rate(qtls_remote_deliveries_total{qtls_node=~\"$nodes\",result="
                      "\"temporary\"}[$window]))"),
            std::string::npos);
  auto own = parseGate("mine:5:sum(up{qtls_node=~\"$nodes\"})", "smtpd", 2, 1, 10);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->query(), "sum(up{qtls_node=~\"$nodes\"})");
  EXPECT_EQ(parseGate("tls_failures", "smtpd", 3, 1, 10).status().message(),
            "--gate tls_failures: no built-in gate of that name for smtpd (starttls_failures); "
            "give your own as NAME:MAX:PROMQL");
  EXPECT_EQ(parseGate("deferrals:lots", "remote", 3, 1, 10).status().message(),
            "--gate deferrals:lots: MAX is not a number");
}

TEST(ParseGate, ReportOnlyGateIsItsOwnKind) {
  auto g = parseGate("would_fail", "smtpd", 3, 1, 10, true);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->query(),
            "sum(rate(qtls_candidate_verdicts_total{qtls_node=~\"$nodes\",component=\"smtpd\","
            "result=~\"starttls-not-supported|certificate-host-mismatch|certificate-expired|"
            "certificate-not-trusted|validation-failure\"}[$window])) / "
            "sum(rate(qtls_candidate_verdicts_total{qtls_node=~\"$nodes\",component=\"smtpd\","
            "result!=\"not-evaluated\"}[$window]))");
  EXPECT_DOUBLE_EQ(parseGate("would_fail:0.1", "remote", 3, 1, 10, true)->max(), 0.1);
  // Candidates exist only before wave 1: as a wave's gate it would never have data.
  EXPECT_EQ(parseGate("would_fail", "remote", 3, 1, 10).status().message(),
            "--gate would_fail: no built-in gate of that name for remote (tls_failures, "
            "deferrals); give your own as NAME:MAX:PROMQL");
  EXPECT_EQ(parseGate("deferrals", "remote", 3, 1, 10, true).status().message(),
            "--report-only-gate deferrals: no built-in gate of that name for remote "
            "(would_fail); give your own as NAME:MAX:PROMQL");
}

TEST(GateQuery, NodesBaselineAndWindowAreSubstituted) {
  v1::FleetGate g;
  g.set_query("a{qtls_node=~\"$nodes\"}[$window] b{qtls_node=~\"$baseline\"}");
  EXPECT_EQ(gateQuery(g, {"mx1.example.net", "mx2"}, {}, 30),
            "a{qtls_node=~\"mx1\\\\.example\\\\.net|mx2\"}[30s] b{qtls_node=~\"^$\"}");
}

// A Prometheus that answers from a list: a number, "empty" (no series) or "error".
PromQuery scripted(std::deque<std::string> answers) {
  auto shared = std::make_shared<std::deque<std::string>>(std::move(answers));
  return [shared](const std::string&) -> absl::StatusOr<std::optional<double>> {
    std::string a = shared->front();
    shared->pop_front();
    if (a == "error") return absl::UnavailableError("prometheus down");
    if (a == "empty") return std::optional<double>();
    if (a == "nan") return std::optional<double>();
    return std::optional<double>(std::stod(a));
  };
}

TEST(EvaluateGate, PassesAfterCountGoodValuesNoDataNeitherPassesNorFails) {
  v1::FleetGate g;
  g.set_max(0.02);
  g.set_count(3);
  g.set_failure_limit(2);
  v1::FleetGateState st;
  auto prom = scripted({"0.01", "empty", "0.0", "0.03", "0.0"});
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kPending);
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kPending);  // no data
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kPending);
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kPassed);  // one failure, under limit
  EXPECT_EQ(st.no_data(), 1u);
  EXPECT_EQ(st.evaluations(), 3u);
  EXPECT_EQ(st.failures(), 1u);
}

TEST(EvaluateGate, FailuresAndErrorsAreCountedApart) {
  v1::FleetGate g;
  g.set_max(0.02);
  g.set_count(5);
  g.set_failure_limit(2);
  v1::FleetGateState st;
  auto prom = scripted({"0.5", "error", "0.5"});
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kPending);
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kPending);
  EXPECT_EQ(evaluateGate(g, st, prom, "q"), GateVerdict::kFailed);
  EXPECT_EQ((std::pair{st.failures(), st.errors()}), (std::pair{2u, 1u}));
  v1::FleetGateState st2;
  auto down = scripted({"error", "error"});
  EXPECT_EQ(evaluateGate(g, st2, down, "q"), GateVerdict::kPending);
  EXPECT_EQ(evaluateGate(g, st2, down, "q"), GateVerdict::kFailed);
  EXPECT_EQ(st2.last_error(), "prometheus down");
}

}  // namespace
}  // namespace qtls::ctl
