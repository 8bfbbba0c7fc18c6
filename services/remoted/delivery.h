// One delivery: find targets, connect, speak SMTP under the TLS policy, and produce
// qmail-remote's report. Runs as a coroutine on the delivery's strand, within an absolute
// deadline; an exception inside it becomes a Z report, never a lost answer.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/event_hub.h"
#include "delivery_control.h"
#include "metrics.h"
#include "outcome.h"
#include "plan.h"
#include "remote_config.h"
#include "resolver.h"
#include "smtp_conn.h"
#include "targets.h"
#include "tls/session_cache.h"

namespace qtls::remoted {

class ConnCache;
class ConnLimits;
class DeadHosts;

struct DeliveryRequest {
  std::string host;
  std::string sender;
  std::vector<std::string> recipients;
  int messageFd = -1;             // regular file, read from its current offset; owned by the caller
  std::string frontend = "shim";  // who asked: "shim" (qtls-remote) or "rspawn" (qtls-rspawn)
};

struct DeliveryDeps {
  RemoteConfigConstSharedPtr config;
  // A fleet candidate evaluated report-only (its `digest` set), or null.
  RemoteConfigConstSharedPtr candidate;
  Resolver* resolver = nullptr;
  std::shared_ptr<const IpMe> ipme;
  unsigned mxPort = 25;
  long maxDeliverySeconds = 3600;     // cap of the per-delivery deadline
  RemoteMetrics* metrics = nullptr;   // may be null (tests)
  admin::EventHub* events = nullptr;  // may be null
  // Where each connection gets its own strand: the io_context's executor.
  asio::any_io_executor pool;
  // Connection reuse, TLS resumption, dead hosts, connection caps (docs/operations.md); each
  // may be null (none).
  ConnCache* cache = nullptr;
  tls::ClientSessionCache* sessions = nullptr;
  DeadHosts* deadHosts = nullptr;
  ConnLimits* limits = nullptr;
  bool pipelining = true;  // use PIPELINING when offered
  // Test seam: makes the connection instead of a TCP connect (a socketpair).
  std::function<asio::awaitable<std::error_code>(SmtpConn&, const asio::ip::tcp::endpoint&,
                                                 std::chrono::seconds)>
      connector;
};

struct DeliveryResult {
  Report report;
  std::shared_ptr<SmtpConn> openConn;  // to be closed politely (QUIT) after reporting: not cached
  std::string logLine;
  bool possibleDuplicate = false;  // stopped or failed after the final dot was sent
};

// The absolute time a delivery may take: one connect per likely address (at most 5) and one
// timeoutremote for each step of the dialogue (greeting, EHLO, STARTTLS, handshake, EHLO,
// HELO, MAIL, DATA, body, final reply, plus one RCPT per recipient), at most `cap` seconds.
long deliveryLimitSeconds(const RemoteConfig& cfg, size_t recipients, long cap);

// Awaits `body`; returns the text of an exception that escaped it, "" when none.
asio::awaitable<std::string> exceptionFrom(asio::awaitable<void> body);

// `control` may be stopped from outside while the delivery runs (on the same strand). Never
// throws: whatever goes wrong inside becomes a Z report.
asio::awaitable<DeliveryResult> deliver(const DeliveryDeps& deps, const DeliveryRequest& req,
                                        std::shared_ptr<DeliveryControl> control);

}  // namespace qtls::remoted
