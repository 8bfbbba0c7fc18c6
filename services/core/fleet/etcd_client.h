// A small etcd v3 client over etcd's own gRPC API (proto/etcd): the calls the fleet code
// needs, with TLS client certificates, a deadline on every unary call, and watch and lease
// keep-alive streams that another thread can cancel. Blocking; callers own their threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace qtls::fleet {

struct EtcdOptions {
  // "https://host:2379" or "host:2379"; with several, each call goes to the member that
  // answered last and moves on when it does not answer.
  std::vector<std::string> endpoints;
  // TLS with a client certificate: the PEM texts, read once by parseEtcdOptions (before the
  // daemon drops its privileges). All empty: plaintext, for tests only.
  std::string caPem, certPem, keyPem;
  std::chrono::milliseconds timeout{5000};  // per unary call
};

// "a,b" -> endpoints; reads the TLS files, which go all together or not at all.
absl::StatusOr<EtcdOptions> parseEtcdOptions(const std::string& endpoints, const std::string& ca,
                                             const std::string& cert, const std::string& key);

struct KeyValue {
  std::string key, value;
  int64_t createRevision = 0, modRevision = 0, version = 0, lease = 0;
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;
};

class Etcd {
 public:
  static absl::StatusOr<std::unique_ptr<Etcd>> connect(const EtcdOptions& options);
  ~Etcd();

  // The value of one key (nullopt if absent); `revision` gets the store's revision.
  absl::StatusOr<std::optional<KeyValue>> get(const std::string& key, int64_t* revision = nullptr);
  // Every key under a prefix, in key order.
  absl::StatusOr<std::vector<KeyValue>> list(const std::string& prefix,
                                             int64_t* revision = nullptr);
  absl::Status put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Many keys, in transactions of up to 100 puts (etcd's default limit is 128 operations):
  // one write to etcd's log per batch instead of one per key.
  absl::Status putMany(const std::vector<std::pair<std::string, std::string>>& kvs);
  // Writes only if the key does not exist; false if it did.
  absl::StatusOr<bool> create(const std::string& key, const std::string& value, int64_t lease = 0);
  // Writes only if the key's mod revision is still `modRevision` (0: the key must not
  // exist); false if someone else wrote it first.
  absl::StatusOr<bool> compareAndPut(const std::string& key, const std::string& value,
                                     int64_t modRevision, int64_t lease = 0);
  // Deletes only if the key's value is still `value` (a lock held by us); false otherwise.
  absl::StatusOr<bool> deleteIfValue(const std::string& key, const std::string& value);
  absl::Status remove(const std::string& key);
  // The names of every key under a prefix, without their values, in key order.
  absl::StatusOr<std::vector<std::string>> keys(const std::string& prefix,
                                                int64_t* revision = nullptr);
  // Deletes each of `keys` and every key under it + "/" in one transaction (at most 60 keys),
  // if no key under any of the prefixes `quiet` was written after `revision`; false (nothing
  // deleted) if one was. Needs etcd 3.3 or later (a Compare over a range).
  absl::StatusOr<bool> removeTreesIfQuiet(const std::vector<std::string>& keys,
                                          const std::vector<std::string>& quiet, int64_t revision);

  absl::StatusOr<int64_t> grantLease(int64_t ttlSeconds);
  absl::Status revokeLease(int64_t id);

  // A lease kept alive over one stream: ping() renews it once and says for how long.
  class KeepAlive {
   public:
    virtual ~KeepAlive() = default;
    virtual absl::StatusOr<int64_t> ping() = 0;  // remaining TTL; error when the lease is gone
    virtual void cancel() = 0;                   // from any thread
  };
  // `waitForReady`: a ping made while etcd is away waits for it to come back (until
  // cancel()) instead of failing at once.
  std::unique_ptr<KeepAlive> keepAlive(int64_t lease, bool waitForReady = false);

  // Events on one key, or every key under a prefix, from `fromRevision` (inclusive; 0 = now).
  class Watch {
   public:
    virtual ~Watch() = default;
    // Blocks for the next batch. An error when the stream ends; FAILED_PRECONDITION with
    // "compacted" when the history asked for is gone (re-read, then watch from the head).
    virtual absl::StatusOr<std::vector<WatchEvent>> next() = 0;
    virtual void cancel() = 0;  // from any thread
  };
  std::unique_ptr<Watch> watch(const std::string& key, bool prefix, int64_t fromRevision);

 private:
  struct Stubs;
  Etcd(std::vector<std::shared_ptr<grpc::Channel>> channels, std::chrono::milliseconds timeout);
  std::unique_ptr<grpc::ClientContext> context() const;
  // Keys in [key, end); end "" = the key alone. `keysOnly`: without their values.
  absl::StatusOr<std::vector<KeyValue>> range(const std::string& key, const std::string& end,
                                              int64_t* revision, bool keysOnly = false);
  // One unary call, on the member that answered last, then on each other one while the
  // answer is UNAVAILABLE or a timeout.
  absl::Status call(const std::string& what,
                    const std::function<grpc::Status(Stubs&, grpc::ClientContext*)>& fn);

  std::vector<std::unique_ptr<Stubs>> stubs_;  // one per endpoint
  std::atomic<size_t> current_{0};
  std::chrono::milliseconds timeout_;
};

// The end of the key range that holds every key starting with `prefix`.
std::string prefixEnd(const std::string& prefix);

}  // namespace qtls::fleet
