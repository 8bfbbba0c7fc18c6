// TLS plan for one target.
#include "plan.h"

#include "util/text.h"

namespace qtls::remoted {

using policy::TlsLevel;

TlsPlan makePlan(const RemoteConfig& cfg, const std::string& domain, const Target& t) {
  TlsPlan p;
  policy::Inputs in = policy::gatherFiles(cfg.controlDir, t.fqdn);
  in.table = cfg.tlspolicy.lookup(domain);
  p.decision = policy::decide(in);
  p.entry = in.table;
  p.spec.ciphers = cfg.ciphers;
  p.spec.clientCertFile = cfg.clientCert;
  if (!t.fqdn.empty()) p.names.push_back(t.fqdn);
  if (p.decision.source == policy::Source::kTlshostsPem) {
    p.caLabel = text::cat("control/tlshosts/", t.fqdn, ".pem");
    p.sentence = text::cat(p.caLabel, " exists");
    p.spec.caFile = text::cat(cfg.controlDir, "/tlshosts/", t.fqdn, ".pem");
  } else if (p.entry != nullptr) {
    p.sentence = text::cat("control/tlspolicy line ", p.entry->line, " requires ",
                           policy::levelName(p.entry->level));
    p.spec.minVersion = p.entry->minVersion;
    if (p.entry->level == TlsLevel::kVerify) {
      if (!p.entry->ca.empty()) {
        p.spec.caFile = p.entry->ca;
        p.caLabel = p.entry->ca;
      } else {
        p.spec.systemCa = true;
        p.caLabel = "the system CA store";
      }
      if (!p.entry->match.empty()) p.names = p.entry->match;
    }
  }
  return p;
}

}  // namespace qtls::remoted
