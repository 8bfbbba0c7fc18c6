// Metric families and the Prometheus text exposition format (version 0.0.4).
#include "stats/metrics.h"

#include <cmath>
#include <cstdio>

namespace qtls::stats {
namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string labelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extraName = "", const std::string& extraValue = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (out.empty() ? "" : ",") + names[i] + "=\"" + escape(values[i]) + "\"";
  if (!extraName.empty()) out += (out.empty() ? "" : ",") + extraName + "=\"" + extraValue + "\"";
  return out.empty() ? "" : "{" + out + "}";
}

void atomicAdd(std::atomic<double>& a, double v) {
  double cur = a.load();
  while (!a.compare_exchange_weak(cur, cur + v)) {
  }
}

}  // namespace

Series::Series(const std::vector<double>* buckets) : buckets_(buckets) {
  if (buckets_) {
    bucketCounts_ = std::make_unique<std::atomic<uint64_t>[]>(buckets_->size());
    for (size_t i = 0; i < buckets_->size(); ++i) bucketCounts_[i] = 0;
  }
}

void Series::add(double v) { atomicAdd(value_, v); }
void Series::set(double v) { value_ = v; }

void Series::observe(double v) {
  for (size_t i = 0; i < buckets_->size(); ++i)
    if (v <= (*buckets_)[i]) ++bucketCounts_[i];
  ++count_;
  atomicAdd(value_, v);
}

Series& Family::with(const std::vector<std::string>& labelValues) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& s = series_[labelValues];
  if (!s) s = std::make_unique<Series>(kind_ == Kind::kHistogram ? &buckets_ : nullptr);
  return *s;
}

Family& Registry::add(const std::string& name, const std::string& help, Kind kind,
                      std::vector<std::string> labels, std::vector<double> buckets) {
  auto f = std::make_unique<Family>();
  f->name_ = name;
  f->help_ = help;
  f->kind_ = kind;
  f->labels_ = std::move(labels);
  f->buckets_ = std::move(buckets);
  std::lock_guard<std::mutex> lock(mu_);
  families_.push_back(std::move(f));
  return *families_.back();
}

Family& Registry::counter(const std::string& name, const std::string& help,
                          std::vector<std::string> labels) {
  return add(name, help, Kind::kCounter, std::move(labels), {});
}
Family& Registry::gauge(const std::string& name, const std::string& help,
                        std::vector<std::string> labels) {
  return add(name, help, Kind::kGauge, std::move(labels), {});
}
Family& Registry::histogram(const std::string& name, const std::string& help,
                            std::vector<double> buckets, std::vector<std::string> labels) {
  return add(name, help, Kind::kHistogram, std::move(labels), std::move(buckets));
}

std::string Registry::render() {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& f : families_) {
    const char* type = f->kind_ == Kind::kCounter ? "counter"
                       : f->kind_ == Kind::kGauge ? "gauge"
                                                  : "histogram";
    out += "# HELP " + f->name_ + " " + f->help_ + "\n# TYPE " + f->name_ + " " + type + "\n";
    std::lock_guard<std::mutex> flock(f->mu_);
    for (auto& [values, s] : f->series_) {
      if (f->kind_ != Kind::kHistogram) {
        out += f->name_ + labelText(f->labels_, values) + " " + number(s->value_.load()) + "\n";
        continue;
      }
      for (size_t i = 0; i < f->buckets_.size(); ++i)
        out += f->name_ + "_bucket" + labelText(f->labels_, values, "le", number(f->buckets_[i])) +
               " " + std::to_string(s->bucketCounts_[i].load()) + "\n";
      out += f->name_ + "_bucket" + labelText(f->labels_, values, "le", "+Inf") + " " +
             std::to_string(s->count_.load()) + "\n";
      out +=
          f->name_ + "_sum" + labelText(f->labels_, values) + " " + number(s->value_.load()) + "\n";
      out += f->name_ + "_count" + labelText(f->labels_, values) + " " +
             std::to_string(s->count_.load()) + "\n";
    }
  }
  return out;
}

const std::vector<double>& latencyBuckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   120};
  return b;
}

}  // namespace qtls::stats
