// The admin gRPC server: the synchronous gRPC API on its own threads (it is the management
// plane, not the data plane), with the daemon's PolicyStore, metrics and session stream.
#include "admin/server.h"

#include <grp.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "admin/tls_front.h"
#include "control/control_files.h"
#include "grpc/health/v1/health.pb.h"
#include "log/log.h"
#include "qtls/v1/metrics.grpc.pb.h"
#include "qtls/v1/policy.grpc.pb.h"
#include "util/text.h"

namespace qtls::admin {
namespace {

grpc::Status toGrpc(const absl::Status& s) {
  grpc::StatusCode c = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return grpc::Status::OK;
    case absl::StatusCode::kInvalidArgument:
      c = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kFailedPrecondition:
      c = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case absl::StatusCode::kAborted:  // compare-and-swap conflict: read again, then retry
      c = grpc::StatusCode::ABORTED;
      break;
    case absl::StatusCode::kNotFound:
      c = grpc::StatusCode::NOT_FOUND;
      break;
    case absl::StatusCode::kPermissionDenied:
      c = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case absl::StatusCode::kUnavailable:  // the store's disk trouble: not "try elsewhere"
      c = grpc::StatusCode::INTERNAL;
      break;
    case absl::StatusCode::kDataLoss:
      c = grpc::StatusCode::DATA_LOSS;
      break;
    default:
      break;
  }
  return grpc::Status(c, std::string(s.message()));
}

// proto3 strings must be UTF-8 or the peer's parser refuses the whole message; HELO names,
// remote replies and hand-made file names are not. Invalid bytes become \xNN.
std::string utf8(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;  // no overlong forms
    if (ok && len == 3) {
      const unsigned char c1 = static_cast<unsigned char>(in[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // no overlong, surrogates
    }
    if (ok && len == 4) {
      const unsigned char c1 = static_cast<unsigned char>(in[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(in, i, len);
      i += len;
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
      ++i;
    }
  }
  return out;
}

v1::ItemChange::Op opOf(Change::Op op) {
  switch (op) {
    case Change::Op::kAdded:
      return v1::ItemChange::OP_ADDED;
    case Change::Op::kRemoved:
      return v1::ItemChange::OP_REMOVED;
    case Change::Op::kModified:
      return v1::ItemChange::OP_MODIFIED;
  }
  return v1::ItemChange::OP_UNSPECIFIED;
}

void fillResult(const ChangeResult& r, v1::PolicyChangeResult* out) {
  out->set_applied(r.applied);
  out->set_generation_before(r.generationBefore);
  out->set_generation_after(r.generationAfter);
  out->set_digest_before(r.digestBefore);
  out->set_digest_after(r.digestAfter);
  for (const Change& c : r.changes) {
    v1::ItemChange* ic = out->add_changes();
    ic->set_path(utf8(c.path));
    ic->set_op(opOf(c.op));
    ic->set_kind(static_cast<v1::ItemKind>(c.kind));
    ic->set_old_sha256(c.oldSha256);
    ic->set_new_sha256(c.newSha256);
    ic->set_diff(utf8(c.diff));
  }
}

std::string unixPath(const std::string& listen) {
  std::string p = listen.substr(5);
  if (p.rfind("//", 0) == 0) p = p.substr(2);
  return p;
}

bool socketInUse(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un sa {};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  bool used = ::connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return used;
}

absl::StatusOr<std::string> readWhole(const std::string& path, const char* flag) {
  auto c = control::readFile(path);
  if (!c.ok())
    return absl::InvalidArgumentError(text::cat(flag, ": ", std::string(c.status().message())));
  if (!*c) return absl::InvalidArgumentError(text::cat(flag, ": ", path, " does not exist"));
  return std::move(**c);
}

}  // namespace

absl::StatusOr<AllowList> loadAllowList(const std::string& path) {
  auto lines = control::readList(path);
  if (!lines.ok()) return lines.status();
  if (!*lines) return absl::InvalidArgumentError(text::cat(path, " does not exist"));
  AllowList out;
  int n = 0;
  for (const std::string& l : **lines) {
    ++n;
    std::vector<std::string_view> f = text::splitAny(l, " \t");
    if (f.size() != 2 || (f[1] != "read" && f[1] != "write"))
      return absl::InvalidArgumentError(
          text::cat(path, " line ", n, ": expected \"<identity> read|write\", got \"", l, "\""));
    out[std::string(f[0])] = f[1] == "write";
  }
  if (out.empty()) return absl::InvalidArgumentError(text::cat(path, " lists no identity"));
  return out;
}

class AdminServer::Impl final : public v1::PolicyService::Service,
                                public v1::TlsMetricsService::Service {
 public:
  Impl(PolicyStore& policy, stats::Registry& registry, SessionHub& hub, ResolveFn resolve)
      : policy_(policy), registry_(registry), hub_(hub), resolve_(std::move(resolve)) {}

  absl::StatusOr<std::vector<std::string>> start(const AdminOptions& o);
  void stop();
  void setServing(bool serving) {
    serving_ = serving;
    if (server_ && server_->GetHealthCheckService()) {
      server_->GetHealthCheckService()->SetServingStatus(serving);
    }
  }

  // --- PolicyService
  grpc::Status GetPolicy(grpc::ServerContext* ctx, const v1::GetPolicyRequest*,
                         v1::GetPolicyResponse* out) override {
    std::string caller;
    if (auto s = authorize(ctx, "GetPolicy", false, &caller); !s.ok()) return s;
    Snapshot snap = policy_.current();
    out->set_generation(snap.generation);
    out->set_digest(snap.digest);
    out->set_daemon(policy_.schema().daemon);
    for (const Rule& r : policy_.schema().rules) out->add_owned_patterns(r.pattern());
    for (uint64_t g : policy_.history())
      if (g < snap.generation) out->add_history(g);
    for (const auto& [path, content] : snap.items) {
      v1::PolicyItem* it = out->add_items();
      it->set_path(utf8(path));
      it->set_kind(
          static_cast<v1::ItemKind>(policy_.kindOf(path).value_or(ItemKind::kUnspecified)));
      it->set_sha256(PolicyStore::sha256Hex(content));
      // Keys never leave the daemon, whichever file (a hand edit, say) holds one.
      bool redacted = false;
      it->set_content(PolicyStore::redactKeys(content, &redacted));
      it->set_redacted(redacted);
    }
    return grpc::Status::OK;
  }

  grpc::Status ApplyPolicy(grpc::ServerContext* ctx, const v1::ApplyPolicyRequest* req,
                           v1::PolicyChangeResult* out) override {
    std::string caller;
    // A dry run changes nothing: read rights are enough (qtlsctl policy diff).
    if (auto s = authorize(ctx, "ApplyPolicy", !req->dry_run(), &caller); !s.ok()) return s;
    if (!serving_)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the daemon is stopping; apply the change after it restarts");
    ChangeRequest cr;
    cr.expectedGeneration = req->expected_generation();
    cr.expectedDigest = req->expected_digest();
    cr.dryRun = req->dry_run();
    cr.replace = req->replace();
    cr.reason = req->reason();
    cr.caller = caller;
    for (int i = 0; i < req->put_size(); ++i) {
      const v1::PolicyItem& it = req->put(i);
      if (cr.put.count(it.path()))
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            text::cat("put ", it.path(), ": given twice"));
      cr.put[it.path()] = it.content();
    }
    for (const std::string& p : req->remove()) cr.remove.push_back(p);
    auto r = policy_.apply(cr);
    if (!r.ok()) return toGrpc(r.status());
    fillResult(*r, out);
    return grpc::Status::OK;
  }

  grpc::Status Rollback(grpc::ServerContext* ctx, const v1::RollbackRequest* req,
                        v1::PolicyChangeResult* out) override {
    std::string caller;
    // A dry run changes nothing: read rights are enough (qtlsctl policy diff).
    if (auto s = authorize(ctx, "Rollback", !req->dry_run(), &caller); !s.ok()) return s;
    if (!serving_)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the daemon is stopping; roll back after it restarts");
    auto r = policy_.rollback(req->expected_generation(), req->to_generation(), req->dry_run(),
                              req->reason(), caller, req->expected_digest());
    if (!r.ok()) return toGrpc(r.status());
    fillResult(*r, out);
    return grpc::Status::OK;
  }

  grpc::Status ResolvePolicy(grpc::ServerContext* ctx, const v1::ResolvePolicyRequest* req,
                             v1::ResolvePolicyResponse* out) override {
    std::string caller;
    if (auto s = authorize(ctx, "ResolvePolicy", false, &caller); !s.ok()) return s;
    std::string err = resolve_(*req, out);
    if (!err.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, err);
    return grpc::Status::OK;
  }

  // --- TlsMetricsService
  grpc::Status GetStats(grpc::ServerContext* ctx, const v1::GetStatsRequest* req,
                        v1::GetStatsResponse* out) override {
    std::string caller;
    if (auto s = authorize(ctx, "GetStats", false, &caller); !s.ok()) return s;
    out->set_daemon(policy_.schema().daemon);
    out->set_policy_generation(policy_.current().generation);
    out->set_uptime_seconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    for (const stats::FamilySnapshot& f : registry_.snapshot()) {
      if (f.name.rfind(req->name_prefix(), 0) != 0) continue;
      v1::MetricFamily* mf = out->add_families();
      mf->set_name(f.name);
      mf->set_help(f.help);
      mf->set_type(f.kind == stats::Kind::kCounter ? v1::MetricFamily::TYPE_COUNTER
                   : f.kind == stats::Kind::kGauge ? v1::MetricFamily::TYPE_GAUGE
                                                   : v1::MetricFamily::TYPE_HISTOGRAM);
      for (const stats::SampleSnapshot& s : f.samples) {
        v1::Sample* sm = mf->add_samples();
        sm->set_name(f.name);
        for (size_t i = 0; i < f.labels.size(); ++i) {
          v1::Label* l = sm->add_labels();
          l->set_name(f.labels[i]);
          l->set_value(s.labelValues[i]);
        }
        if (f.kind != stats::Kind::kHistogram) {
          sm->set_value(s.value);
          continue;
        }
        for (size_t i = 0; i < f.buckets.size(); ++i) {
          sm->add_bucket_bounds(f.buckets[i]);
          sm->add_bucket_counts(s.bucketCounts[i]);
        }
        sm->add_bucket_bounds(std::numeric_limits<double>::infinity());
        sm->add_bucket_counts(s.count);
        sm->set_count(s.count);
        sm->set_sum(s.value);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status WatchSessions(grpc::ServerContext* ctx, const v1::WatchSessionsRequest* req,
                             grpc::ServerWriter<v1::SessionRecord>* writer) override {
    std::string caller;
    if (auto s = authorize(ctx, "WatchSessions", false, &caller); !s.ok()) return s;
    auto w = hub_.watch();
    // Headers now, so a caller knows it is subscribed before the first session ends.
    writer->SendInitialMetadata();
    log::info(text::cat("admin: session watch started caller=", log::value(caller)));
    uint64_t lost = 0;
    while (!ctx->IsCancelled()) {
      uint64_t dropped = 0;
      std::optional<SessionEvent> e = w->next(250, &dropped);
      lost += dropped;
      if (!e) {
        if (w->closed()) break;
        continue;
      }
      if ((req->direction() == v1::WatchSessionsRequest::DIRECTION_OUTBOUND &&
           e->direction != "outbound") ||
          (req->direction() == v1::WatchSessionsRequest::DIRECTION_INBOUND &&
           e->direction != "inbound"))
        continue;
      v1::SessionRecord rec;
      rec.set_end_time(e->endTime);
      rec.set_direction(e->direction);
      rec.set_peer(utf8(e->peer));
      rec.set_domain(utf8(e->domain));
      rec.set_level_requested(utf8(e->levelRequested));
      rec.set_level_achieved(utf8(e->levelAchieved));
      rec.set_policy_source(utf8(e->policySource));
      rec.set_tls_version(utf8(e->tlsVersion));
      rec.set_cipher(utf8(e->cipher));
      rec.set_verify(utf8(e->verify));
      rec.set_resumed(e->resumed);
      rec.set_connection_reused(e->connectionReused);
      rec.set_outcome(utf8(e->outcome));
      rec.set_detail(utf8(e->detail));
      rec.set_duration_seconds(e->durationSeconds);
      rec.set_recipients(e->recipients);
      rec.set_messages(e->messages);
      rec.set_tls_mode(utf8(e->tlsMode));
      rec.set_failure_reason(e->failureReason);
      rec.set_dropped_before(lost);
      rec.set_policy_generation(e->policyGeneration);
      rec.set_policy_digest(e->policyDigest);
      rec.set_candidate_digest(e->candidateDigest);
      rec.set_candidate_verdict(e->candidateVerdict);
      lost = 0;
      if (!writer->Write(rec)) break;
    }
    hub_.unwatch(w);
    return grpc::Status::OK;
  }

 private:
  grpc::Status authorize(grpc::ServerContext* ctx, const char* method, bool write,
                         std::string* caller) {
    const std::string peer = ctx->peer();
    if (peer.rfind("unix:", 0) == 0) {
      // Whoever can open the socket is trusted (mode 0660); the operator name is a claim.
      *caller = "unix";
      auto md = ctx->client_metadata().find("x-qtls-operator");
      if (md != ctx->client_metadata().end())
        *caller += ":" + std::string(md->second.data(), std::min<size_t>(md->second.size(), 64));
      return grpc::Status::OK;
    }
    // TCP: the TLS front did the handshake and let only listed identities through to here.
    std::optional<TlsPeer> who = front_ ? front_->peerOf(peer) : std::nullopt;
    if (!who || who->identity.empty())
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "admin calls over TCP need a listed client certificate");
    *caller = text::cat("mtls:", who->identity, "@", who->address);
    if (write && !who->write) {
      const std::string why =
          text::cat("identity ", who->identity,
                    " has read rights only; ApplyPolicy and Rollback (other than dry runs) need "
                    "write rights in the admin allow-list");
      policy_.auditDenied(*caller, method, why);
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why);
    }
    return grpc::Status::OK;
  }

  PolicyStore& policy_;
  stats::Registry& registry_;
  SessionHub& hub_;
  ResolveFn resolve_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TlsFront> front_;  // TCP listeners, if any
  std::vector<std::string> unixSockets_;
  std::atomic<bool> serving_{true};
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

absl::StatusOr<std::vector<std::string>> AdminServer::Impl::start(const AdminOptions& o) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // gRPC's health service carries no descriptor of its own; linking the generated one puts
  // grpc.health.v1 in the pool reflection answers from, so tools can resolve it.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(PolicyStore::kMaxMessageBytes);
  builder.SetMaxSendMessageSize(PolicyStore::kMaxMessageBytes);
  builder.RegisterService(static_cast<v1::PolicyService::Service*>(this));
  builder.RegisterService(static_cast<v1::TlsMetricsService::Service*>(this));

  std::vector<std::string> tcp;  // addresses bound by the TLS front
  for (const std::string& l : o.listen) {
    if (l.rfind("unix:", 0) == 0) {
      const std::string path = unixPath(l);
      if (path.empty() || path[0] != '/')
        return absl::InvalidArgumentError(
            text::cat("--admin-listen ", l, ": a Unix socket needs an absolute path"));
      struct stat st;
      const std::string dir = path.substr(0, path.rfind('/'));
      if (::stat(dir.empty() ? "/" : dir.c_str(), &st) != 0)
        return absl::InvalidArgumentError(
            text::cat("--admin-listen ", l, ": directory ", dir, ": ", std::strerror(errno)));
      if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
          return absl::InvalidArgumentError(
              text::cat("--admin-listen ", l, ": ", path, " exists and is not a socket"));
        if (socketInUse(path))
          return absl::FailedPreconditionError(
              text::cat("--admin-listen ", l, ": another process is serving on ", path));
        ::unlink(path.c_str());  // left over from an earlier run
      }
      builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
      unixSockets_.push_back(path);
      continue;
    }
    // TCP: mutual TLS or nothing, done by our front (tls_front.h).
    if (o.certFile.empty() || o.keyFile.empty() || o.clientCaFile.empty() || o.clientsFile.empty())
      return absl::InvalidArgumentError(text::cat(
          "refusing to serve the admin API on TCP ", l,
          " without mutual TLS: give --admin-cert, --admin-key, --admin-client-ca and "
          "--admin-clients (or use a Unix socket: --admin-listen unix:/run/qtls/admin.sock)"));
    if (!front_) {
      auto cert = readWhole(o.certFile, "--admin-cert");
      if (!cert.ok()) return cert.status();
      auto key = readWhole(o.keyFile, "--admin-key");
      if (!key.ok()) return key.status();
      auto ca = readWhole(o.clientCaFile, "--admin-client-ca");
      if (!ca.ok()) return ca.status();
      auto allow = loadAllowList(o.clientsFile);
      if (!allow.ok())
        return absl::InvalidArgumentError(
            text::cat("--admin-clients: ", std::string(allow.status().message())));
      auto ctx = TlsFront::makeContext(*cert, *key, *ca);
      if (!ctx.ok()) return ctx.status();
      front_ = std::make_unique<TlsFront>(std::move(*ctx), *allow);
    }
    auto bound = front_->listen(l);
    if (!bound.ok()) return bound.status();
    tcp.push_back(*bound);
  }

  // The group is checked before anything exists. Sockets are made 0600, then given to the
  // group, then opened to it: never, even briefly, wider than their final mode (a 0660 socket
  // in the daemon's own group, which qmail's other daemons share, would be).
  struct group* group = nullptr;
  if (!o.socketGroup.empty() && (group = ::getgrnam(o.socketGroup.c_str())) == nullptr)
    return absl::InvalidArgumentError("--admin-group: no such group: " + o.socketGroup);
  const gid_t gid = group ? group->gr_gid : static_cast<gid_t>(-1);
  const mode_t old = ::umask(0177);
  server_ = builder.BuildAndStart();
  ::umask(old);
  if (!server_)
    return absl::UnavailableError(text::cat("cannot start the admin gRPC server on ",
                                            text::cat(o.listen.size(), " listener(s)"),
                                            " (address in use, or a bad address)"));
  std::vector<std::string> where;
  for (const std::string& path : unixSockets_) {
    if (!o.socketGroup.empty()) {
      if (::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0)
        return absl::InternalError(text::cat("cannot give ", path, " to group ", o.socketGroup,
                                             ": ", std::strerror(errno)));
      // Group access only for a group the operator named: the daemon's own group may be
      // shared with other qmail daemons (nofiles), which must not change TLS policy.
      if (::chmod(path.c_str(), 0660) != 0)
        return absl::InternalError(
            text::cat("cannot open ", path, " to its group: ", std::strerror(errno)));
    }
    where.push_back("unix:" + path);
  }
  if (front_) {
    auto refused = [this](const TlsPeer& peer, const std::string& method, const std::string& why) {
      std::string ids;
      for (const std::string& id : peer.identities) ids += (ids.empty() ? "" : ",") + id;
      policy_.auditDenied(text::cat("mtls:", ids.empty() ? "(none)" : ids, "@", peer.address),
                          method.substr(method.rfind('/') + 1), why);
    };
    if (auto s = front_->start(server_.get(), refused); !s.ok()) return s;
  }
  for (const std::string& t : tcp) where.push_back(t);
  setServing(true);
  return where;
}

void AdminServer::Impl::stop() {
  if (!server_) return;
  setServing(false);
  hub_.close();
  if (front_) front_->stop();  // connections first: gRPC then sees them end
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  server_.reset();
  for (const std::string& p : unixSockets_) ::unlink(p.c_str());
}

AdminServer::AdminServer(PolicyStore& policy, stats::Registry& registry, SessionHub& hub,
                         ResolveFn resolve)
    : impl_(std::make_unique<Impl>(policy, registry, hub, std::move(resolve))) {}
AdminServer::~AdminServer() { impl_->stop(); }
absl::StatusOr<std::vector<std::string>> AdminServer::start(const AdminOptions& options) {
  return impl_->start(options);
}
void AdminServer::setServing(bool serving) { impl_->setServing(serving); }
void AdminServer::stop() { impl_->stop(); }

}  // namespace qtls::admin
