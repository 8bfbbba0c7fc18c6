// What a delivery asks of DNS (MX, A, AAAA), as an interface: AresResolver is the daemon's,
// through c-ares; tests give tests/fakes/fake_resolver.h. Delivery coroutines await results,
// which are posted back to their own executor.
//
// AresResolver: one resolver thread owns the c-ares channel and its sockets (a level-triggered
// poll loop). Many queries run at once; none blocks a delivery thread.
#pragma once

#include <ares.h>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/ip/address.hpp>
#include <asio/post.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace qtls::remoted {

enum class DnsStatus {
  kOk,
  kHard,  // NXDOMAIN or no data of that type: the name has no such records
  kSoft,  // timeout, SERVFAIL, refused, malformed answer: try again later
};

struct MxRecord {
  std::string host;  // as in the answer: original case, no trailing dot
  int preference = 0;
};

struct DnsResult {
  DnsStatus status = DnsStatus::kSoft;
  std::vector<MxRecord> mx;                  // for MX queries
  std::vector<asio::ip::address> addresses;  // for A and AAAA queries
};

class Resolver {
 public:
  enum class Type { kMx, kA, kAaaa };
  using Callback = std::function<void(DnsResult)>;
  virtual ~Resolver() = default;
  // `cb` runs on a thread of the resolver's (AresResolver: its own).
  virtual void query(const std::string& name, Type type, Callback cb) = 0;

  // Awaitable form: the handler runs on its own associated executor.
  template <typename Token>
  auto asyncQuery(const std::string& name, Type type, Token&& token) {
    return asio::async_initiate<Token, void(DnsResult)>(
        [this, name, type](auto handler) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          query(name, type, [h](DnsResult r) {
            auto ex = asio::get_associated_executor(*h);
            asio::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
          });
        },
        token);
  }
};

class AresResolver final : public Resolver {
 public:
  struct Options {
    std::string servers;  // "host:port,..." as c-ares takes it; empty = /etc/resolv.conf
    int timeoutMs = 3000;
    int tries = 2;
  };
  static absl::StatusOr<std::unique_ptr<Resolver>> create(const Options& options);
  ~AresResolver() override;

  void query(const std::string& name, Type type, Callback cb) override;

 private:
  AresResolver() = default;
  void run();
  void wake();

  struct Pending {
    std::string name;
    Type type;
    Callback cb;
  };
  ares_channel channel_ = nullptr;
  int wakeFd_ = -1;
  std::mutex mu_;
  std::deque<Pending> pending_;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::thread thread_;
};

}  // namespace qtls::remoted
