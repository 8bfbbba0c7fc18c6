// The etcd v3 client (etcd_client.h).
#include "fleet/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "control/control_files.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "util/grpc_channel.h"
#include "util/text.h"

namespace qtls::fleet {
namespace pb = etcdserverpb;

struct Etcd::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Lease::Stub> lease;
};

namespace {

absl::Status fromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = text::cat("etcd ", what, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::UnavailableError(msg);
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::PermissionDeniedError(msg);
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

KeyValue toKv(const mvccpb::KeyValue& kv) {
  return KeyValue{kv.key(),          kv.value(),   kv.create_revision(),
                  kv.mod_revision(), kv.version(), kv.lease()};
}

std::string hostPort(const std::string& endpoint) {
  std::string e = endpoint;
  for (const char* scheme : {"https://", "http://"})
    if (e.rfind(scheme, 0) == 0) e = e.substr(std::strlen(scheme));
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

class KeepAliveStream : public Etcd::KeepAlive {
 public:
  KeepAliveStream(pb::Lease::Stub* stub, int64_t lease, bool waitForReady) : lease_(lease) {
    ctx_.set_wait_for_ready(waitForReady);
    stream_ = stub->LeaseKeepAlive(&ctx_);
  }
  ~KeepAliveStream() override {
    cancel();
    if (stream_) stream_->Finish().IgnoreError();
  }
  absl::StatusOr<int64_t> ping() override {
    pb::LeaseKeepAliveRequest req;
    req.set_id(lease_);
    pb::LeaseKeepAliveResponse resp;
    if (!stream_->Write(req) || !stream_->Read(&resp))
      return absl::UnavailableError("etcd lease keep-alive: stream closed");
    if (resp.ttl() <= 0)
      return absl::NotFoundError(text::cat("etcd lease ", lease_, " has expired"));
    return resp.ttl();
  }
  void cancel() override { ctx_.TryCancel(); }

 private:
  int64_t lease_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>>
      stream_;
};

class WatchStream : public Etcd::Watch {
 public:
  WatchStream(pb::Watch::Stub* stub, const std::string& key, bool prefix, int64_t from) {
    stream_ = stub->Watch(&ctx_);
    pb::WatchRequest req;
    auto* c = req.mutable_create_request();
    c->set_key(key);
    if (prefix) c->set_range_end(prefixEnd(key));
    c->set_start_revision(from);
    c->set_progress_notify(true);
    ok_ = stream_->Write(req);
  }
  ~WatchStream() override {
    cancel();
    if (stream_) stream_->Finish().IgnoreError();
  }
  absl::StatusOr<std::vector<WatchEvent>> next() override {
    for (;;) {
      pb::WatchResponse resp;
      if (!ok_ || !stream_->Read(&resp)) return absl::UnavailableError("etcd watch: stream closed");
      if (resp.compact_revision() != 0)
        return absl::FailedPreconditionError(
            text::cat("etcd watch: history compacted up to revision ", resp.compact_revision()));
      if (resp.canceled())
        return absl::UnavailableError("etcd watch: canceled by the server: " +
                                      resp.cancel_reason());
      if (resp.events_size() == 0) continue;  // created, or a progress notification
      std::vector<WatchEvent> out;
      for (const auto& e : resp.events())
        out.push_back(
            {e.type() == mvccpb::Event::DELETE ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut,
             toKv(e.kv())});
      return out;
    }
  }
  void cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream_;
  bool ok_ = false;
};

}  // namespace

std::string prefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

absl::StatusOr<EtcdOptions> parseEtcdOptions(const std::string& endpoints, const std::string& ca,
                                             const std::string& cert, const std::string& key) {
  EtcdOptions o;
  for (std::string_view e : text::split(endpoints, ','))
    if (!e.empty()) o.endpoints.emplace_back(e);
  if (o.endpoints.empty()) return absl::InvalidArgumentError("--fleet-etcd: no endpoint");
  const int given = !ca.empty() + !cert.empty() + !key.empty();
  if (given != 0 && given != 3)
    return absl::InvalidArgumentError(
        "--fleet-ca, --fleet-cert and --fleet-key go together (TLS with a client certificate)");
  for (auto [file, out] :
       {std::pair{&ca, &o.caPem}, std::pair{&cert, &o.certPem}, std::pair{&key, &o.keyPem}}) {
    if (file->empty()) continue;
    auto c = control::readFile(*file);
    if (!c.ok()) return c.status();
    if (!*c) return absl::InvalidArgumentError(text::cat(*file, " does not exist"));
    *out = std::move(**c);
  }
  return o;
}

Etcd::Etcd(std::vector<std::shared_ptr<grpc::Channel>> channels, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  for (auto& channel : channels) {
    auto st = std::make_unique<Stubs>();
    st->channel = channel;
    st->kv = pb::KV::NewStub(channel);
    st->watch = pb::Watch::NewStub(channel);
    st->lease = pb::Lease::NewStub(channel);
    stubs_.push_back(std::move(st));
  }
}

Etcd::~Etcd() = default;

absl::StatusOr<std::unique_ptr<Etcd>> Etcd::connect(const EtcdOptions& o) {
  if (o.endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoint");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (o.caPem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = o.caPem;
    ssl.pem_cert_chain = o.certPem;
    ssl.pem_private_key = o.keyPem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args = grpcutil::clientChannelArguments();
  args.SetMaxReceiveMessageSize(80 << 20);  // a 64 MiB bundle in one Range
  // Reconnect quickly after etcd comes back; our own loop backs off with jitter.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // One channel per member, each checking that member's own certificate name; calls move to
  // the next member when one does not answer.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (const std::string& e : o.endpoints)
    channels.push_back(grpc::CreateCustomChannel(hostPort(e), creds, args));
  return std::unique_ptr<Etcd>(new Etcd(std::move(channels), o.timeout));
}

absl::Status Etcd::call(const std::string& what,
                        const std::function<grpc::Status(Stubs&, grpc::ClientContext*)>& fn) {
  absl::Status last;
  const size_t first = current_;
  for (size_t tries = 0; tries < stubs_.size(); ++tries) {
    const size_t i = (first + tries) % stubs_.size();
    auto ctx = context();
    grpc::Status s = fn(*stubs_[i], ctx.get());
    last = fromGrpc(s, what);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      current_ = i;
      return last;
    }
  }
  current_ = (first + 1) % stubs_.size();  // the streams try another member next time
  return last;
}

std::unique_ptr<grpc::ClientContext> Etcd::context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout_);
  return ctx;
}

absl::StatusOr<std::vector<KeyValue>> Etcd::range(const std::string& key, const std::string& end,
                                                  int64_t* revision, bool keysOnly) {
  pb::RangeRequest req;
  req.set_key(key);
  req.set_range_end(end);
  req.set_keys_only(keysOnly);
  pb::RangeResponse resp;
  if (auto s = call((end.empty() ? "get " : "list ") + key,
                    [&](Stubs& st, grpc::ClientContext* c) { return st.kv->Range(c, req, &resp); });
      !s.ok())
    return s;
  if (revision) *revision = resp.header().revision();
  std::vector<KeyValue> out;
  for (const auto& kv : resp.kvs()) out.push_back(toKv(kv));
  return out;
}

absl::StatusOr<std::optional<KeyValue>> Etcd::get(const std::string& key, int64_t* revision) {
  auto kvs = range(key, "", revision);
  if (!kvs.ok()) return kvs.status();
  if (kvs->empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(std::move(kvs->front()));
}

absl::StatusOr<std::vector<KeyValue>> Etcd::list(const std::string& prefix, int64_t* revision) {
  return range(prefix, prefixEnd(prefix), revision);
}

absl::StatusOr<std::vector<std::string>> Etcd::keys(const std::string& prefix, int64_t* revision) {
  auto kvs = range(prefix, prefixEnd(prefix), revision, true);
  if (!kvs.ok()) return kvs.status();
  std::vector<std::string> out;
  for (KeyValue& kv : *kvs) out.push_back(std::move(kv.key));
  return out;
}

absl::StatusOr<bool> Etcd::removeTreesIfQuiet(const std::vector<std::string>& keys,
                                              const std::vector<std::string>& quiet,
                                              int64_t revision) {
  pb::TxnRequest req;
  for (const std::string& prefix : quiet) {
    auto* cmp = req.add_compare();
    cmp->set_key(prefix);
    cmp->set_range_end(prefixEnd(prefix));
    cmp->set_target(pb::Compare::MOD);
    cmp->set_mod_revision(revision + 1);
    cmp->set_result(pb::Compare::LESS);
  }
  for (const std::string& key : keys) {
    req.add_success()->mutable_request_delete_range()->set_key(key);
    auto* tree = req.add_success()->mutable_request_delete_range();
    tree->set_key(key + "/");
    tree->set_range_end(prefixEnd(key + "/"));
  }
  pb::TxnResponse resp;
  if (auto s = call(text::cat("txn ", keys.empty() ? std::string() : keys.front()),
                    [&](Stubs& st, grpc::ClientContext* c) { return st.kv->Txn(c, req, &resp); });
      !s.ok())
    return s;
  return resp.succeeded();
}

absl::Status Etcd::put(const std::string& key, const std::string& value, int64_t lease) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  pb::PutResponse resp;
  return call("put " + key,
              [&](Stubs& st, grpc::ClientContext* c) { return st.kv->Put(c, req, &resp); });
}

absl::Status Etcd::putMany(const std::vector<std::pair<std::string, std::string>>& kvs) {
  for (size_t off = 0; off < kvs.size(); off += 100) {
    pb::TxnRequest req;
    for (size_t i = off; i < std::min(kvs.size(), off + 100); ++i) {
      auto* put = req.add_success()->mutable_request_put();
      put->set_key(kvs[i].first);
      put->set_value(kvs[i].second);
    }
    pb::TxnResponse resp;
    if (auto s = call(text::cat("put ", kvs[off].first, " and ",
                                std::min<size_t>(99, kvs.size() - off - 1), " more"),
                      [&](Stubs& st, grpc::ClientContext* c) { return st.kv->Txn(c, req, &resp); });
        !s.ok())
      return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Etcd::compareAndPut(const std::string& key, const std::string& value,
                                         int64_t modRevision, int64_t lease) {
  pb::TxnRequest req;
  auto* cmp = req.add_compare();
  cmp->set_key(key);
  if (modRevision == 0) {
    cmp->set_target(pb::Compare::CREATE);
    cmp->set_create_revision(0);
  } else {
    cmp->set_target(pb::Compare::MOD);
    cmp->set_mod_revision(modRevision);
  }
  cmp->set_result(pb::Compare::EQUAL);
  auto* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  pb::TxnResponse resp;
  if (auto s = call("txn " + key,
                    [&](Stubs& st, grpc::ClientContext* c) { return st.kv->Txn(c, req, &resp); });
      !s.ok())
    return s;
  return resp.succeeded();
}

absl::StatusOr<bool> Etcd::create(const std::string& key, const std::string& value, int64_t lease) {
  return compareAndPut(key, value, 0, lease);
}

absl::StatusOr<bool> Etcd::deleteIfValue(const std::string& key, const std::string& value) {
  pb::TxnRequest req;
  auto* cmp = req.add_compare();
  cmp->set_key(key);
  cmp->set_target(pb::Compare::VALUE);
  cmp->set_value(value);
  cmp->set_result(pb::Compare::EQUAL);
  req.add_success()->mutable_request_delete_range()->set_key(key);
  pb::TxnResponse resp;
  if (auto s = call("txn " + key,
                    [&](Stubs& st, grpc::ClientContext* c) { return st.kv->Txn(c, req, &resp); });
      !s.ok())
    return s;
  return resp.succeeded();
}

absl::Status Etcd::remove(const std::string& key) {
  pb::DeleteRangeRequest req;
  req.set_key(key);
  pb::DeleteRangeResponse resp;
  return call("delete " + key,
              [&](Stubs& st, grpc::ClientContext* c) { return st.kv->DeleteRange(c, req, &resp); });
}

absl::StatusOr<int64_t> Etcd::grantLease(int64_t ttlSeconds) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttlSeconds);
  pb::LeaseGrantResponse resp;
  if (auto s = call(
          "lease grant",
          [&](Stubs& st, grpc::ClientContext* c) { return st.lease->LeaseGrant(c, req, &resp); });
      !s.ok())
    return s;
  if (!resp.error().empty()) return absl::UnavailableError("etcd lease grant: " + resp.error());
  return resp.id();
}

absl::Status Etcd::revokeLease(int64_t id) {
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  pb::LeaseRevokeResponse resp;
  return call("lease revoke", [&](Stubs& st, grpc::ClientContext* c) {
    return st.lease->LeaseRevoke(c, req, &resp);
  });
}

std::unique_ptr<Etcd::KeepAlive> Etcd::keepAlive(int64_t lease, bool waitForReady) {
  return std::make_unique<KeepAliveStream>(stubs_[current_ % stubs_.size()]->lease.get(), lease,
                                           waitForReady);
}

std::unique_ptr<Etcd::Watch> Etcd::watch(const std::string& key, bool prefix,
                                         int64_t fromRevision) {
  return std::make_unique<WatchStream>(stubs_[current_ % stubs_.size()]->watch.get(), key, prefix,
                                       fromRevision);
}

}  // namespace qtls::fleet
