/* What the C benchmark drivers share: a monotonic clock in seconds, and the one line of
 * figures both print (remote_bench.py reads it). */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline int bench_cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* "deliveries=N seconds=S rate=R p50_ms=.. p99_ms=.. failed=F child_cpu_ms=C": latencies
 * `lat` (sorted here) and the CPU of the children waited for so far, per delivery. */
static inline void bench_report(int count, double secs, double* lat, int failed) {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  const double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  qsort(lat, (size_t)count, sizeof *lat, bench_cmp_double);
  printf(
      "deliveries=%d seconds=%.3f rate=%.1f p50_ms=%.2f p99_ms=%.2f failed=%d "
      "child_cpu_ms=%.3f\n",
      count, secs, count / secs, lat[count / 2] * 1000, lat[(count * 99) / 100] * 1000, failed,
      cpu * 1000 / count);
}
