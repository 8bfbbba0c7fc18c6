// Numbers in /metrics: the shortest form that reads back the same (docs/metrics.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "stats/metrics.h"

namespace qtls::stats {
namespace {

TEST(FormatNumber, ShortestForm) {
  EXPECT_EQ(formatNumber(0), "0");
  EXPECT_EQ(formatNumber(10), "10");
  EXPECT_EQ(formatNumber(120), "120");
  EXPECT_EQ(formatNumber(0.1), "0.1");
  EXPECT_EQ(formatNumber(0.005), "0.005");
  EXPECT_EQ(formatNumber(2.5), "2.5");
  EXPECT_EQ(formatNumber(300), "300");
  EXPECT_EQ(formatNumber(12345678), "12345678");  // a large counter, every digit
  EXPECT_EQ(formatNumber(1e6), "1e+06");          // shorter than 1000000
  EXPECT_EQ(formatNumber(1e-9), "1e-09");
  EXPECT_EQ(formatNumber(1767225600), "1767225600");  // a timestamp gauge
  EXPECT_EQ(formatNumber(-3), "-3");
  EXPECT_EQ(formatNumber(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(formatNumber(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(formatNumber(std::nan("")), "NaN");
  for (double v : {0.1, 0.25, 1.0 / 3, 123.456, 9007199254740993.0, 5e-324})
    EXPECT_EQ(std::strtod(formatNumber(v).c_str(), nullptr), v) << formatNumber(v);
}

TEST(FormatNumber, BucketBoundsAndCountersInTheExposition) {
  Registry r;
  Family& h = r.histogram("qtls_test_seconds", "Test.", {0.005, 0.1, 1, 10, 120, 1e6}, {});
  h.with({}).observe(7);
  Family& c = r.counter("qtls_test_total", "Test.", {});
  c.with({}).add(10);
  const std::string text = r.render();
  for (const char* le : {"0.005", "0.1", "1", "10", "120", "1e+06", "+Inf"})
    EXPECT_NE(text.find(std::string("qtls_test_seconds_bucket{le=\"") + le + "\"}"),
              std::string::npos)
        << le << "\n"
        << text;
  EXPECT_NE(text.find("qtls_test_total 10\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("e+01"), std::string::npos) << text;
}

}  // namespace
}  // namespace qtls::stats
