// PromQL over HTTP (prometheus_query.h).
#include "prometheus_query.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <cmath>
#include <cstdlib>

#include "util/text.h"

namespace qtls::ctl {

PromQuery prometheusAt(const std::string& baseUrl) {
  return [baseUrl](const std::string& promql) -> absl::StatusOr<std::optional<double>> {
    httplib::Client http(baseUrl);
    http.set_connection_timeout(5);
    http.set_read_timeout(20);
    httplib::Params params{{"query", promql}};
    auto res = http.Post("/api/v1/query", params);
    if (!res)
      return absl::UnavailableError(
          text::cat("prometheus ", baseUrl, ": ", httplib::to_string(res.error())));
    google::protobuf::Value body;
    if (!google::protobuf::util::JsonStringToMessage(res->body, &body).ok())
      return absl::InternalError(
          text::cat("prometheus ", baseUrl, ": HTTP ", res->status, ", not JSON"));
    const auto& top = body.struct_value().fields();
    auto field = [](const google::protobuf::Struct& s, const char* name) {
      auto it = s.fields().find(name);
      return it == s.fields().end() ? google::protobuf::Value() : it->second;
    };
    if (field(body.struct_value(), "status").string_value() != "success")
      return absl::InvalidArgumentError(
          text::cat("prometheus: ", field(body.struct_value(), "error").string_value(),
                    " (query: ", promql, ")"));
    (void)top;
    const auto data = field(body.struct_value(), "data").struct_value();
    const std::string type = field(data, "resultType").string_value();
    const auto result = field(data, "result");
    std::string text;
    if (type == "scalar") {
      text = result.list_value().values(1).string_value();
    } else if (type == "vector") {
      const auto& series = result.list_value().values();
      if (series.empty()) return std::optional<double>();
      if (series.size() > 1)
        return absl::InvalidArgumentError(text::cat("prometheus: the query returned ",
                                                    series.size(),
                                                    " series; a gate needs one number: ", promql));
      text = field(series[0].struct_value(), "value").list_value().values(1).string_value();
    } else {
      return absl::InvalidArgumentError("prometheus: a gate's query must give a number, not a " +
                                        type);
    }
    const double v = std::strtod(text.c_str(), nullptr);
    if (std::isnan(v)) return std::optional<double>();
    return std::optional<double>(v);
  };
}

}  // namespace qtls::ctl
