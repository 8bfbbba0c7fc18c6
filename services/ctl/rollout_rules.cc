// Wave sizes, and gates: the built-in queries, the spec syntax, the substitution of the
// wave's nodes and the baseline into a query, one evaluation (rollout_rules.h).
#include "rollout_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "fleet/verdict.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

// The wave's ratio minus the baseline's over the same window. The wave's part has no guard:
// no series (not scraped) is an empty result and no traffic is NaN, both inconclusive. The
// baseline's part is 0 when the baseline has no traffic or no nodes.
std::string comparedRatio(const std::string& numerator, const std::string& denominator) {
  // "name" or "name{matchers}": the node selector joins the matchers inside the braces.
  auto select = [](const std::string& series, const std::string& sel) {
    const size_t brace = series.find('{');
    if (brace == std::string::npos) return text::cat(series, "{", sel, "}");
    return text::cat(series.substr(0, brace), "{", sel, ",", series.substr(brace + 1));
  };
  auto part = [&](const char* who, bool guard) {
    const std::string sel = text::cat("qtls_node=~\"", who, "\"");
    std::string num = text::cat("sum(rate(", select(numerator, sel), "[$window]))");
    std::string den = text::cat("sum(rate(", select(denominator, sel), "[$window]))");
    if (guard) return text::cat("(", num, " / clamp_min(", den, ", 1e-9) or vector(0))");
    return text::cat("(", num, " / ", den, ")");
  };
  return text::cat(part("$nodes", false), " - ", part("$baseline", true));
}

// Report-only: the share of the nodes' sessions the candidate would have refused, among those
// it could be judged on. No traffic is NaN: no data, never a pass.
std::string wouldFailRatio(const std::string& component) {
  std::string fails;
  for (fleet::Verdict v : fleet::kVerdicts)
    if (fleet::wouldFail(v))
      fails += (fails.empty() ? "" : "|") + std::string(fleet::verdictName(v));
  const std::string sel = text::cat("qtls_node=~\"$nodes\",component=\"", component, "\"");
  return text::cat("sum(rate(qtls_candidate_verdicts_total{", sel, ",result=~\"", fails,
                   "\"}[$window])) / sum(rate(qtls_candidate_verdicts_total{", sel,
                   ",result!=\"not-evaluated\"}[$window]))");
}

struct Builtin {
  const char* name;
  const char* component;
  double max;
  std::string query;
  bool reportOnly = false;  // a --report-only-gate, not a wave's --gate
};

const std::vector<Builtin>& builtins() {
  static const std::vector<Builtin> b = {
      {"tls_failures", "remote", 0.02,
       comparedRatio("qtls_remote_tls_failures_total", "qtls_remote_deliveries_total")},
      {"deferrals", "remote", 0.05,
       comparedRatio("qtls_remote_deliveries_total{result=\"temporary\"}",
                     "qtls_remote_deliveries_total")},
      {"starttls_failures", "smtpd", 0.02,
       comparedRatio("qtls_agent_starttls_total{result=\"failed\"}", "qtls_agent_starttls_total")},
      {"would_fail", "remote", 0.02, wouldFailRatio("remote"), true},
      {"would_fail", "smtpd", 0.02, wouldFailRatio("smtpd"), true},
  };
  return b;
}

}  // namespace

std::string regexOf(const std::vector<std::string>& nodes) {
  if (nodes.empty()) return "^$";  // matches no node
  std::string out;
  for (const std::string& n : nodes) {
    if (!out.empty()) out += "|";
    for (char c : n) {
      if (c == '.') out += "\\\\";  // a PromQL string literal: \\ is one backslash
      out += c;
    }
  }
  return out;
}

absl::StatusOr<v1::FleetGate> parseGate(const std::string& spec, const std::string& component,
                                        unsigned count, unsigned failureLimit,
                                        double intervalSeconds, bool reportOnly) {
  const char* flag = reportOnly ? "--report-only-gate" : "--gate";
  v1::FleetGate g;
  const size_t c1 = spec.find(':');
  g.set_name(spec.substr(0, c1));
  g.set_count(count);
  g.set_failure_limit(failureLimit);
  g.set_interval_seconds(static_cast<uint32_t>(intervalSeconds));
  std::string max;
  if (c1 != std::string::npos) {
    const size_t c2 = spec.find(':', c1 + 1);
    max = spec.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
    if (c2 != std::string::npos) g.set_query(spec.substr(c2 + 1));
  }
  if (g.query().empty()) {
    for (const Builtin& b : builtins())
      if (g.name() == b.name && component == b.component && reportOnly == b.reportOnly) {
        g.set_query(b.query);
        g.set_max(b.max);
      }
    if (g.query().empty()) {
      std::string names;
      for (const Builtin& b : builtins())
        if (component == b.component && reportOnly == b.reportOnly)
          names += (names.empty() ? "" : ", ") + std::string(b.name);
      return absl::InvalidArgumentError(
          text::cat(flag, " ", spec, ": no built-in gate of that name for ", component, " (", names,
                    "); give your own as NAME:MAX:PROMQL"));
    }
  }
  if (!max.empty()) {
    char* end = nullptr;
    const double m = std::strtod(max.c_str(), &end);
    if (end == max.c_str() || *end != '\0')
      return absl::InvalidArgumentError(text::cat(flag, " ", spec, ": MAX is not a number"));
    g.set_max(m);
  }
  if (g.name().empty()) return absl::InvalidArgumentError(text::cat(flag, ": a gate needs a name"));
  return g;
}

std::string gateQuery(const v1::FleetGate& g, const std::vector<std::string>& waveNodes,
                      const std::vector<std::string>& baseline, double windowSeconds) {
  std::string q = g.query();
  auto replace = [&](const std::string& var, const std::string& with) {
    for (size_t p; (p = q.find(var)) != std::string::npos;) q.replace(p, var.size(), with);
  };
  replace("$nodes", regexOf(waveNodes));
  replace("$baseline", regexOf(baseline));
  replace("$window", text::cat(static_cast<long>(windowSeconds), "s"));
  return q;
}

GateVerdict evaluateGate(const v1::FleetGate& g, v1::FleetGateState& st, const PromQuery& prom,
                         const std::string& query) {
  st.set_name(g.name());
  auto v = prom(query);
  if (!v.ok()) {
    st.set_errors(st.errors() + 1);
    st.set_last_error(std::string(v.status().message()));
    return st.errors() >= std::max(1u, g.failure_limit()) ? GateVerdict::kFailed
                                                          : GateVerdict::kPending;
  }
  if (!*v) {
    st.set_no_data(st.no_data() + 1);
    return st.evaluations() >= std::max(1u, g.count()) ? GateVerdict::kPassed
                                                       : GateVerdict::kPending;
  }
  st.set_evaluations(st.evaluations() + 1);
  st.set_last_value(**v);
  if (**v > g.max()) {
    st.set_failures(st.failures() + 1);
    if (st.failures() >= std::max(1u, g.failure_limit())) return GateVerdict::kFailed;
  }
  return st.evaluations() >= std::max(1u, g.count()) ? GateVerdict::kPassed : GateVerdict::kPending;
}

absl::StatusOr<std::vector<size_t>> waveSizes(const std::vector<std::string>& waves, size_t nodes) {
  std::vector<size_t> out;
  for (const std::string& w : waves) {
    size_t n = 0;
    if (!w.empty() && w.back() == '%') {
      const double pct = std::strtod(w.c_str(), nullptr);
      if (pct <= 0 || pct > 100) return absl::InvalidArgumentError("--waves: bad percentage " + w);
      n = static_cast<size_t>(std::ceil(static_cast<double>(nodes) * pct / 100.0));
    } else {
      if (w.empty() || w.find_first_not_of("0123456789") != std::string::npos)
        return absl::InvalidArgumentError("--waves: want counts or percentages, not " + w);
      n = std::strtoul(w.c_str(), nullptr, 10);
    }
    n = std::min(std::max<size_t>(n, 1), nodes);
    if (!out.empty() && n < out.back())
      return absl::InvalidArgumentError("--waves: each wave covers at least the one before");
    out.push_back(n);
  }
  if (out.empty() || out.back() != nodes)
    return absl::InvalidArgumentError(
        text::cat("--waves: the last wave must cover every node (", nodes, "); end with 100%"));
  return out;
}

}  // namespace qtls::ctl
