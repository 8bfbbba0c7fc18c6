// TLS plan for one target.
#include "plan.h"

#include "util/text.h"

namespace qtls::remoted {

using policy::TlsLevel;

TlsPlan makePlan(const RemoteConfig& cfg, const std::string& domain, const Target& t) {
  TlsPlan p;
  policy::Inputs in = cfg.files.inputs(t.fqdn);
  in.table = cfg.tlspolicy.lookup(domain);
  p.decision = policy::decide(in);
  p.entry = in.table;
  p.context = cfg.plainContext;
  if (!t.fqdn.empty()) p.names.push_back(t.fqdn);
  if (p.decision.source == policy::Source::kTlshostsPem) {
    p.caLabel = text::cat("control/tlshosts/", t.fqdn, ".pem");
    p.sentence = text::cat(p.caLabel, " exists");
    p.context = cfg.tlshostsContexts.at(t.fqdn);
  } else if (p.entry != nullptr) {
    p.sentence = text::cat("control/tlspolicy line ", p.entry->line, " requires ",
                           policy::levelName(p.entry->level));
    p.context = cfg.entryContexts.at(p.entry);
    if (p.entry->level == TlsLevel::kVerify) {
      p.caLabel = p.entry->ca.empty() ? "the system CA store" : p.entry->ca;
      if (!p.entry->match.empty()) p.names = p.entry->match;
    }
  }
  return p;
}

}  // namespace qtls::remoted
