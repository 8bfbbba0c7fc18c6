// ResolvePolicy for inbound (resolve_policy.h).
#include "resolve_policy.h"

#include <asio/ip/address.hpp>
#include <vector>

#include "util/text.h"

namespace qtls::agent {

std::string resolvePolicy(const SmtpdConfig& cfg, const v1::ResolvePolicyRequest& req,
                          v1::ResolvePolicyResponse* out) {
  out->set_generation(cfg.generation);
  out->set_starttls_offered(cfg.tlsFor("") != nullptr);
  std::vector<std::string> why;
  if (!req.client_address().empty()) {
    std::error_code ec;
    auto addr = asio::ip::make_address(req.client_address(), ec);
    if (ec) return "client_address: not an IP address: " + req.client_address();
    addr = unmapped(addr);
    for (const Cidr& c : cfg.relayClients)
      if (c.contains(addr)) {
        out->set_relay_allowed(true);
        why.push_back(text::cat("control/relayclients has ", c.network.to_string(), "/", c.prefix));
        break;
      }
  }
  if (!out->relay_allowed() && !req.client_cert_email().empty()) {
    if (!cfg.certRelay)
      why.push_back("certificate relay is off (control/tlsclients or clientca.pem missing)");
    else if (cfg.tlsclients.count(text::lower(req.client_cert_email()))) {
      out->set_relay_allowed(true);
      why.push_back(text::cat("control/tlsclients lists ", req.client_cert_email(),
                              " (with a certificate that verifies against clientca.pem)"));
    } else {
      why.push_back(text::cat("control/tlsclients does not list ", req.client_cert_email()));
    }
  }
  if (!req.recipient().empty()) {
    const std::string rcpt = text::lower(req.recipient());
    const size_t at = rcpt.rfind('@');
    const std::string domain = at == std::string::npos ? "" : rcpt.substr(at + 1);
    bool listed = !cfg.haveRcpthosts;
    for (size_t dot = 0; !listed && !domain.empty();) {
      listed = cfg.rcpthosts.count(domain.substr(dot)) > 0 ||
               (dot > 0 && cfg.rcpthosts.count(domain.substr(dot - 1)) > 0);
      dot = domain.find('.', dot);
      if (dot == std::string::npos) break;
      ++dot;
    }
    out->set_recipient_accepted(listed || out->relay_allowed());
    why.push_back(!cfg.haveRcpthosts ? "control/rcpthosts is missing: every recipient is accepted"
                  : listed           ? text::cat("control/rcpthosts accepts ", domain)
                  : out->relay_allowed()
                      ? text::cat(domain, " is not in rcpthosts; relaying allowed")
                      : text::cat(domain, " is not in control/rcpthosts: 553"));
  }
  std::string reason;
  for (const auto& w : why) reason += (reason.empty() ? "" : "; ") + w;
  out->set_reason(reason.empty() ? "give client_address, client_cert_email or recipient" : reason);
  return "";
}

}  // namespace qtls::agent
