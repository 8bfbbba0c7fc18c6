// Metric families and the Prometheus text exposition format (version 0.0.4).
#include "stats/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace qtls::stats {

std::string formatNumber(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  // Shortest round trip, fixed or scientific, whichever is shorter (C++17 to_chars).
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

namespace {

std::string number(double v) { return formatNumber(v); }

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

void Family::remove(const std::vector<std::string>& labelValues) {
  std::lock_guard<std::mutex> lock(mu_);
  series_.erase(labelValues);
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

std::vector<FamilySnapshot> Registry::snapshot() {
  std::vector<FamilySnapshot> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.reserve(families_.size());
  for (auto& f : families_) {
    FamilySnapshot& fs = out.emplace_back();
    fs.name = f->name_;
    fs.help = f->help_;
    fs.kind = f->kind_;
    fs.labels = f->labels_;
    fs.buckets = f->buckets_;
    std::lock_guard<std::mutex> flock(f->mu_);
    for (auto& [values, s] : f->series_) {
      SampleSnapshot& ss = fs.samples.emplace_back();
      ss.labelValues = values;
      ss.value = s->value_.load();
      ss.count = s->count_.load();
      for (size_t i = 0; s->bucketCounts_ && i < f->buckets_.size(); ++i)
        ss.bucketCounts.push_back(s->bucketCounts_[i].load());
    }
  }
  return out;
}

std::string Registry::render() {
  std::string out;
  for (const FamilySnapshot& f : snapshot()) {
    const char* type = f.kind == Kind::kCounter ? "counter"
                       : f.kind == Kind::kGauge ? "gauge"
                                                : "histogram";
    out += "# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + type + "\n";
    for (const SampleSnapshot& s : f.samples) {
      if (f.kind != Kind::kHistogram) {
        out += f.name + labelText(f.labels, s.labelValues) + " " + number(s.value) + "\n";
        continue;
      }
      for (size_t i = 0; i < f.buckets.size(); ++i)
        out += f.name + "_bucket" + labelText(f.labels, s.labelValues, "le", number(f.buckets[i])) +
               " " + std::to_string(s.bucketCounts[i]) + "\n";
      out += f.name + "_bucket" + labelText(f.labels, s.labelValues, "le", "+Inf") + " " +
             std::to_string(s.count) + "\n";
      out += f.name + "_sum" + labelText(f.labels, s.labelValues) + " " + number(s.value) + "\n";
      out += f.name + "_count" + labelText(f.labels, s.labelValues) + " " +
             std::to_string(s.count) + "\n";
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
