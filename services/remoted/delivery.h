// One delivery: find targets, connect, speak SMTP under the TLS policy, and produce
// qmail-remote's report. Runs as a coroutine on the delivery's strand.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "metrics.h"
#include "outcome.h"
#include "remote_config.h"
#include "resolver.h"
#include "smtp_conn.h"
#include "targets.h"

namespace qtls::remoted {

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
  RemoteMetrics* metrics = nullptr;  // may be null (tests)
};

struct DeliveryResult {
  Report report;
  std::shared_ptr<SmtpConn> openConn;  // to be closed politely (QUIT) after reporting
  std::string logLine;
};

asio::awaitable<DeliveryResult> deliver(const DeliveryDeps& deps, const DeliveryRequest& req);

}  // namespace qtls::remoted
