// The configuration and build metrics every qtls daemon exports (docs/metrics.md).
#pragma once

#include <cstdint>
#include <string>

#include "stats/metrics.h"

namespace qtls::stats {

struct ConfigMetrics {
  ConfigMetrics(Registry& r, const std::string& program)
      : generation(r.gauge("qtls_policy_generation", "Generation of the configuration in force.")),
        updates(r.counter("qtls_policy_updates_total",
                          "Policy changes, one per audit line: op is init, apply, rollback or "
                          "hand-edit; result is applied or refused.",
                          {"op", "result"})),
        buildInfo(r.gauge("qtls_build_info", "Always 1; the labels say what runs.",
                          {"program", "version"})) {
    buildInfo.with({program, QTLS_VERSION}).set(1);
    for (const char* op : {"init", "apply", "rollback", "hand-edit"})
      for (const char* result : {"applied", "refused"}) updates.with({op, result});
  }

  void inForce(uint64_t gen) { generation().set(static_cast<double>(gen)); }
  void change(const std::string& op, bool applied) {
    updates.with({op, applied ? "applied" : "refused"}).add(1);
  }

  Family& generation;
  Family& updates;
  Family& buildInfo;
};

}  // namespace qtls::stats
