// One PromQL query against the Prometheus HTTP API (/api/v1/query), for rollout gates.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace qtls::ctl {

// The value of an instant query: nullopt when the result is empty or NaN (no data: a gate
// calls that inconclusive), an error when Prometheus cannot answer or the query is wrong. A
// result of several series is refused: a gate's query must reduce to one number.
using PromQuery = std::function<absl::StatusOr<std::optional<double>>(const std::string& promql)>;

// Queries the Prometheus at `baseUrl` ("http://127.0.0.1:9090").
PromQuery prometheusAt(const std::string& baseUrl);

}  // namespace qtls::ctl
