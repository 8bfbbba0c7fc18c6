// qtlsctl's connection to a daemon's admin API: the global options, the channel (Unix
// socket, or mutual TLS over TCP), and how a gRPC error becomes a message and an exit code.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "cli.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "qtls/v1/metrics.grpc.pb.h"
#include "qtls/v1/policy.grpc.pb.h"

namespace qtls::ctl {

struct Options {
  std::string target, cert, key, ca, serverName;
  bool json = false;
  int timeout = 30;
};

std::string codeName(grpc::StatusCode c);
// The exit code for a gRPC status (docs/admin-api.md, "qtlsctl").
int exitFor(const grpc::Status& s);
// Prints "qtlsctl: TARGET: CODE: message" and returns exitFor(s).
int fail(const Options& o, const grpc::Status& s);
// A flag's value as a number; a usage error otherwise.
uint64_t number(const std::string& flag, const std::string& v);

class Client {
 public:
  explicit Client(const Options& o);
  // A call's context: the --timeout deadline (none for a stream) and the operator's name.
  std::unique_ptr<grpc::ClientContext> context(bool stream = false) const;

  qtls::v1::PolicyService::Stub& policy() { return *policy_; }
  qtls::v1::TlsMetricsService::Stub& metrics() { return *metrics_; }
  grpc::health::v1::Health::Stub& health() { return *health_; }

 private:
  const Options& o_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<qtls::v1::PolicyService::Stub> policy_;
  std::unique_ptr<qtls::v1::TlsMetricsService::Stub> metrics_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace qtls::ctl
