// Prometheus metrics: counters, gauges and histograms declared once per component, with label
// values from closed sets (never a domain, address or recipient), rendered in the text
// exposition format. Finding a series takes a short per-family lock (a few per delivery or
// session); the values themselves are atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qtls::stats {

enum class Kind { kCounter, kGauge, kHistogram };

class Series {
 public:
  explicit Series(const std::vector<double>* buckets);
  void add(double v);      // counter/gauge
  void set(double v);      // gauge
  void observe(double v);  // histogram

 private:
  friend class Registry;
  std::atomic<double> value_{0};
  const std::vector<double>* buckets_;
  std::unique_ptr<std::atomic<uint64_t>[]> bucketCounts_;
  std::atomic<uint64_t> count_{0};
};

class Family {
 public:
  // Label values in the order of the family's label names.
  Series& with(const std::vector<std::string>& labelValues);
  Series& operator()() { return with({}); }
  // Drops a series, so that it is absent rather than a placeholder value (a certificate that
  // is not there has no expiry time).
  void remove(const std::vector<std::string>& labelValues);

 private:
  friend class Registry;
  std::string name_, help_;
  Kind kind_ = Kind::kCounter;
  std::vector<std::string> labels_;
  std::vector<double> buckets_;
  std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;
};

// Adds 1 to an unlabelled gauge for its lifetime (deliveries in flight, sessions open). A
// frame holding one may be destroyed mid-way at shutdown, which is why it is a guard. Null: no-op.
class GaugeGuard {
 public:
  explicit GaugeGuard(Family* gauge) : s_(gauge ? &(*gauge)() : nullptr) {
    if (s_) s_->add(1);
  }
  ~GaugeGuard() {
    if (s_) s_->add(-1);
  }
  GaugeGuard(const GaugeGuard&) = delete;
  GaugeGuard& operator=(const GaugeGuard&) = delete;

 private:
  Series* s_;
};

// A consistent-enough copy of every series, for /metrics and the gRPC GetStats call.
struct SampleSnapshot {
  std::vector<std::string> labelValues;
  double value = 0;                    // counter/gauge value; histogram sum
  std::vector<uint64_t> bucketCounts;  // histogram: cumulative, one per bound (no +Inf)
  uint64_t count = 0;                  // histogram
};
struct FamilySnapshot {
  std::string name, help;
  Kind kind = Kind::kCounter;
  std::vector<std::string> labels;
  std::vector<double> buckets;
  std::vector<SampleSnapshot> samples;
};

// The shortest text that reads back as the same double, fixed or scientific, whichever is
// shorter: 10, 0.1, 120, 12345678, 1e+06; +Inf, -Inf, NaN. An `le` label must be canonical, or
// two scrapes' buckets do not line up in queries and a `le="10"` matcher finds nothing.
std::string formatNumber(double v);

class Registry {
 public:
  Family& counter(const std::string& name, const std::string& help,
                  std::vector<std::string> labels = {});
  Family& gauge(const std::string& name, const std::string& help,
                std::vector<std::string> labels = {});
  Family& histogram(const std::string& name, const std::string& help, std::vector<double> buckets,
                    std::vector<std::string> labels = {});
  std::vector<FamilySnapshot> snapshot();
  std::string render();

 private:
  Family& add(const std::string& name, const std::string& help, Kind kind,
              std::vector<std::string> labels, std::vector<double> buckets);
  std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
};

// Latency buckets in seconds, from 1 ms to 2 minutes.
const std::vector<double>& latencyBuckets();

}  // namespace qtls::stats
