// One delivery: find targets, connect, speak SMTP under the TLS policy, and produce
// qmail-remote's report. Runs as a coroutine on the delivery's strand.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "admin/session_events.h"
#include "metrics.h"
#include "outcome.h"
#include "policy/resolve.h"
#include "remote_config.h"
#include "resolver.h"
#include "smtp_conn.h"
#include "targets.h"
#include "tls/client_context.h"

namespace qtls::remoted {

// What the policy asks for at one target, and the words the reports use for it.
struct TlsPlan {
  policy::Decision decision;
  const policy::TableEntry* entry = nullptr;
  // "control/tlshosts/<fqdn>.pem exists" or "control/tlspolicy line N requires L"
  std::string sentence;
  std::string caLabel;             // CA file as reports name it
  std::vector<std::string> names;  // accepted certificate names (verify)
  tls::ClientContextSpec spec;
};
// The plan for delivering mail for `domain` to target `t` under `cfg` (also answers the
// admin API's ResolvePolicy).
TlsPlan makePlan(const RemoteConfig& cfg, const std::string& domain, const Target& t);

struct DeliveryRequest {
  std::string host;
  std::string sender;
  std::vector<std::string> recipients;
  int messageFd = -1;  // regular file, read from its current offset; owned by the caller
};

struct DeliveryDeps {
  RemoteConfigConstSharedPtr config;
  Resolver* resolver = nullptr;
  std::shared_ptr<const IpMe> ipme;
  unsigned mxPort = 25;
  RemoteMetrics* metrics = nullptr;     // may be null (tests)
  admin::SessionHub* events = nullptr;  // may be null
};

struct DeliveryResult {
  Report report;
  std::shared_ptr<SmtpConn> openConn;  // to be closed politely (QUIT) after reporting
  std::string logLine;
};

asio::awaitable<DeliveryResult> deliver(const DeliveryDeps& deps, const DeliveryRequest& req);

}  // namespace qtls::remoted
