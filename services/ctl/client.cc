// qtlsctl's connection to a daemon (client.h).
#include "client.h"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "admin/policy_store.h"
#include "util/grpc_channel.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;

std::string codeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "code " + std::to_string(static_cast<int>(c));
  }
}

// gRPC's status codes are the canonical ones absl's are: one table serves both.
static_assert(static_cast<int>(grpc::StatusCode::UNAVAILABLE) ==
                  static_cast<int>(absl::StatusCode::kUnavailable) &&
              static_cast<int>(grpc::StatusCode::UNAUTHENTICATED) ==
                  static_cast<int>(absl::StatusCode::kUnauthenticated) &&
              static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION) ==
                  static_cast<int>(absl::StatusCode::kFailedPrecondition));

int exitFor(const grpc::Status& s) { return exitForCode(static_cast<int>(s.error_code())); }

int fail(const Options& o, const grpc::Status& s) {
  std::fprintf(stderr, "qtlsctl: %s: %s: %s\n", o.target.c_str(), codeName(s.error_code()).c_str(),
               s.error_message().c_str());
  return exitFor(s);
}

uint64_t number(const std::string& flag, const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    usage(flag + ": not a number: " + v);
  return std::strtoull(v.c_str(), nullptr, 10);
}

Client::Client(const Options& o) : o_(o) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  std::string addr = o.target;
  grpc::ChannelArguments args = qtls::grpcutil::clientChannelArguments();
  // A whole policy is one message, up to 64 MiB (docs/admin-api.md, "Limits").
  args.SetMaxReceiveMessageSize(qtls::admin::PolicyStore::kMaxMessageBytes);
  args.SetMaxSendMessageSize(qtls::admin::PolicyStore::kMaxMessageBytes);
  if (addr.rfind("unix:", 0) == 0) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (o.cert.empty() || o.key.empty() || o.ca.empty())
      usage("a TCP target needs --cert, --key and --ca: the admin API over TCP is mutual TLS");
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = readFile(o.ca);
    ssl.pem_private_key = readFile(o.key);
    ssl.pem_cert_chain = readFile(o.cert);
    creds = grpc::SslCredentials(ssl);
    if (!o.serverName.empty()) args.SetSslTargetNameOverride(o.serverName);
  }
  channel_ = grpc::CreateCustomChannel(addr, creds, args);
  policy_ = v1::PolicyService::NewStub(channel_);
  metrics_ = v1::TlsMetricsService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::context(bool stream) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!stream)
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o_.timeout));
  const char* who = std::getenv("SUDO_USER");
  if (who == nullptr) who = std::getenv("USER");
  std::string name = who ? who : "";
  if (name.empty())
    if (struct passwd* pw = getpwuid(getuid())) name = pw->pw_name;
  if (!name.empty()) ctx->AddMetadata("x-qtls-operator", name);
  return ctx;
}

}  // namespace qtls::ctl
