// The admin gRPC server: the synchronous gRPC API on its own threads (it is the management
// plane, not the data plane), with the daemon's PolicyStore, metrics and session stream.
#include "admin/server.h"

#include <grp.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <set>

#include "admin/listeners.h"
#include "admin/proto_convert.h"
#include "admin/tls_front.h"
#include "grpc/health/v1/health.pb.h"
#include "log/log.h"
#include "qtls/v1/metrics.grpc.pb.h"
#include "qtls/v1/policy.grpc.pb.h"
#include "util/text.h"

namespace qtls::admin {

class AdminServer::Impl final : public v1::PolicyService::Service,
                                public v1::TlsMetricsService::Service {
 public:
  Impl(PolicyStore& policy, stats::Registry& registry, EventHub& hub, ResolveFn resolve)
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
    Generation snap = policy_.current();
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
  EventHub& hub_;
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
      auto path = prepareUnixSocket(l);
      if (!path.ok()) return path.status();
      builder.AddListeningPort("unix:" + *path, grpc::InsecureServerCredentials());
      unixSockets_.push_back(*path);
      continue;
    }
    // TCP: mutual TLS or nothing, done by our front (tls_front.h).
    if (!front_) {
      auto front = makeTlsFront(o, l);
      if (!front.ok()) return front.status();
      front_ = std::move(*front);
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
  if (auto s = openToGroup(unixSockets_, o.socketGroup, gid); !s.ok()) return s;
  std::vector<std::string> where;
  for (const std::string& path : unixSockets_) where.push_back("unix:" + path);
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

AdminServer::AdminServer(PolicyStore& policy, stats::Registry& registry, EventHub& hub,
                         ResolveFn resolve)
    : impl_(std::make_unique<Impl>(policy, registry, hub, std::move(resolve))) {}
AdminServer::~AdminServer() { impl_->stop(); }
absl::StatusOr<std::vector<std::string>> AdminServer::start(const AdminOptions& options) {
  return impl_->start(options);
}
void AdminServer::setServing(bool serving) { impl_->setServing(serving); }
void AdminServer::stop() { impl_->stop(); }

}  // namespace qtls::admin
