// ResolvePolicy for outbound (resolve_policy.h).
#include "resolve_policy.h"

#include <openssl/ssl.h>

#include <asio/ip/address.hpp>

#include "plan.h"
#include "targets.h"
#include "util/text.h"

namespace qtls::remoted {

std::string resolvePolicy(const RemoteConfig& cfg, const v1::ResolvePolicyRequest& req,
                          v1::ResolvePolicyResponse* out) {
  if (req.domain().empty() && req.mx_host().empty())
    return "domain: give the delivery domain (and mx_host for the MX host's qmail files)";
  const std::string domain = text::lower(req.domain().empty() ? req.mx_host() : req.domain());
  Target t;
  t.fqdn = req.mx_host().empty() ? domain : req.mx_host();
  std::error_code ec;
  asio::ip::make_address(t.fqdn, ec);
  if (!ec) t.fqdn.clear();  // an IP target has no name: no qmail policy file applies
  TlsPlan plan = makePlan(cfg, domain, t);
  out->set_generation(cfg.generation);
  out->set_level(static_cast<v1::TlsLevel>(static_cast<int>(plan.decision.level) + 1));
  out->set_source(std::string(policy::sourceName(plan.decision.source)));
  std::string reason = plan.sentence;
  if (reason.empty()) switch (plan.decision.source) {
      case policy::Source::kNoName:
        reason = "the target is an IP address: opportunistic TLS";
        break;
      case policy::Source::kExhaustiveList:
        reason = "control/tlshosts/exhaustivelist exists and names no " + t.fqdn + ".pem";
        break;
      case policy::Source::kNotlshosts:
        reason = "control/notlshosts/" + t.fqdn + " exists";
        break;
      default:
        reason = "no policy file applies: opportunistic TLS";
        break;
    }
  if (req.mx_host().empty())
    reason += " (qmail's files are per MX host; this answer used the domain as the host name)";
  out->set_reason(reason);
  out->set_ca_file(plan.caLabel);
  for (const auto& n : plan.names) out->add_match_names(n);
  if (plan.entry) {
    if (plan.entry->minVersion != 0)
      out->set_min_version(plan.entry->minVersion == TLS1_3_VERSION   ? "TLS1.3"
                           : plan.entry->minVersion == TLS1_2_VERSION ? "TLS1.2"
                           : plan.entry->minVersion == TLS1_1_VERSION ? "TLS1.1"
                                                                      : "TLS1");
    for (const auto& p : plan.entry->pins) {
      static const char hex[] = "0123456789abcdef";
      std::string h = p.kind == policy::Pin::Kind::kSpki ? "spki:" : "cert:";
      for (unsigned char c : p.sha256) {
        h.push_back(hex[c >> 4]);
        h.push_back(hex[c & 15]);
      }
      out->add_fingerprints(h);
    }
  }
  return "";
}

}  // namespace qtls::remoted
