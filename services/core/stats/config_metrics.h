// The configuration and build metrics every qtls daemon exports (docs/metrics.md).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "fleet/component.h"
#include "fleet/verdict.h"
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
                          {"program", "version"})),
        policyInfo(r.gauge("qtls_policy_info",
                           "1 for the policy in force: component is remote or smtpd, digest the "
                           "sha256 of its content (the same on every host with that policy).",
                           {"component", "digest"})),
        fleetConnected(r.gauge("qtls_fleet_connected",
                               "1 while the node is connected to etcd, 0 while not; absent "
                               "without --fleet-etcd.")),
        candidateVerdicts(r.counter(
            "qtls_candidate_verdicts_total",
            "Report-only: what the fleet candidate policy would have done with each session run "
            "under the policy in force (remote: deliveries; smtpd: sessions). result is pass, "
            "downgrade, starttls-not-supported, certificate-host-mismatch, certificate-expired, "
            "certificate-not-trusted, validation-failure or not-evaluated.",
            {"component", "result"})),
        component_(fleet::componentOf(program)) {
    buildInfo.with({program, QTLS_VERSION}).set(1);
    for (const char* op : {"init", "apply", "rollback", "hand-edit"})
      for (const char* result : {"applied", "refused"}) updates.with({op, result});
    for (fleet::Verdict v : fleet::kVerdicts)
      candidateVerdicts.with({component_, std::string(fleet::verdictName(v))});
  }

  void inForce(uint64_t gen, const std::string& digest) {
    generation().set(static_cast<double>(gen));
    std::lock_guard<std::mutex> lock(mu_);
    if (digest == digest_) return;
    if (!digest_.empty()) policyInfo.remove({component_, digest_});
    policyInfo.with({component_, digest}).set(1);
    digest_ = digest;
  }
  void change(const std::string& op, bool applied) {
    updates.with({op, applied ? "applied" : "refused"}).add(1);
  }
  void judged(fleet::Verdict v) {
    candidateVerdicts.with({component_, std::string(fleet::verdictName(v))}).add(1);
  }

  Family& generation;
  Family& updates;
  Family& buildInfo;
  Family& policyInfo;
  Family& fleetConnected;
  Family& candidateVerdicts;

 private:
  const std::string component_;
  std::mutex mu_;
  std::string digest_;  // in policyInfo now
};

}  // namespace qtls::stats
