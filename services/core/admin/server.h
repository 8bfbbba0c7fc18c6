// The admin gRPC server both daemons run: qtls.v1.PolicyService and TlsMetricsService over a
// PolicyStore, a metrics Registry and a EventHub, plus grpc.health.v1 (NOT_SERVING while
// draining) and server reflection (docs/admin-api.md).
//
// Listeners: "unix:/path" (mode 0660, optional group; trusted by file permissions) and
// "host:port" TCP, which is refused unless mutual TLS is configured: a server certificate, a
// client CA, and an allow-list of client identities with read or write rights. An identity
// not on the list is refused on every call, a read identity on ApplyPolicy and Rollback. The
// TLS is done by TlsFront (tls_front.h), so every refusal is logged with the peer's address.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "admin/event_hub.h"
#include "admin/listeners.h"
#include "admin/policy_store.h"
#include "stats/metrics.h"

namespace grpc {
class Server;
class Status;
}  // namespace grpc

namespace qtls::v1 {
class ResolvePolicyRequest;
class ResolvePolicyResponse;
}  // namespace qtls::v1

namespace qtls::admin {

struct AdminOptions {
  std::vector<std::string> listen;  // "unix:/run/qtls/remoted-admin.sock", "0.0.0.0:9743"
  std::string socketGroup;          // group for the Unix socket; empty = the daemon's
  std::string certFile, keyFile;    // TCP: the server's certificate and key
  std::string clientCaFile;         // TCP: CA that issued the clients' certificates
  std::string clientsFile;          // TCP: "<identity> read|write" lines
};

// Fills the answer from the daemon's configuration in force; returns an empty string, or an
// INVALID_ARGUMENT message.
using ResolveFn =
    std::function<std::string(const v1::ResolvePolicyRequest&, v1::ResolvePolicyResponse*)>;

class AdminServer {
 public:
  AdminServer(PolicyStore& policy, stats::Registry& registry, EventHub& hub, ResolveFn resolve);
  ~AdminServer();

  // Starts every listener; returns where each listens ("unix:/path", "127.0.0.1:40123").
  absl::StatusOr<std::vector<std::string>> start(const AdminOptions& options);
  // Health status of the daemon (and the empty service name).
  void setServing(bool serving);
  // Ends watch streams and stops serving.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qtls::admin
