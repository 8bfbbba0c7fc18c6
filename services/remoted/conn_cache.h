// The outbound connection cache (docs/operations.md, "Connection reuse"): after a clean
// transaction a connection stays idle for the next delivery to the same server under the same
// security, as Postfix's connection cache does, limited in time, not in uses (a use count
// makes the slowest server a "fatal attractor"): an idle limit and a total lifetime.
//
// The key carries everything that decided the connection's security, from the compiled
// policy snapshot: the policy digest, the server's address, port and name (SNI), the level,
// the TLS context (one per trust content, ciphers, minimum version and client certificate),
// the names or pins accepted, and our HELO name. A connection made under `may` is never found
// by a delivery that needs `verify`, and a policy change retires every idle connection made
// under the old one.
//
// Thread-safe. Idle connections get QUIT when they expire, on a policy change and at shutdown;
// one found closed or talking while idle is dropped without a word.
#pragma once

#include <asio/any_io_executor.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "connection.h"
#include "metrics.h"
#include "plan.h"
#include "smtp_conn.h"
#include "util/clock.h"

namespace qtls::remoted {

std::string connectionKey(const RemoteConfig& cfg, const TlsPlan& plan, const Target& t,
                          unsigned port);

class ConnCache {
 public:
  struct Options {
    std::chrono::milliseconds idle{2000};  // 0: no reuse
    std::chrono::seconds lifetime{300};
    size_t maxIdle = 1000;          // idle connections in all
    size_t maxIdlePerAddress = 20;  // to one server address
  };
  struct Entry {
    std::shared_ptr<SmtpConn> conn;
    ConnFacts facts;
    std::string digest;  // of the policy it was made under
    std::string address;
    Clock::time_point created, idleSince;  // on clock()
    unsigned transactions = 0;             // done on it so far
  };

  ConnCache(Options o, RemoteMetrics* metrics, const Clock& clock = Clock::steady());
  ~ConnCache();

  bool enabled() const { return o_.idle.count() > 0; }
  const Clock& clock() const { return clock_; }

  // An idle connection for `key`, still fit (neither expired nor closed by the server), taken
  // out of the cache; nullopt when there is none.
  std::optional<Entry> take(const std::string& key);
  // A connection after a clean transaction, kept idle unless over its lifetime, over the
  // limits, made under another policy than the one in force, or after shutdown (then QUIT).
  void put(const std::string& key, Entry e);
  // The policy in force is now `digest`: QUIT to every idle connection made under another.
  // "" : shutdown, QUIT to all, and none is kept from now on.
  void retire(const std::string& digest);
  // QUIT to the expired; run every second by start() until retire("") or destruction.
  void sweep();
  void start(asio::any_io_executor ex);
  size_t idle() const;

 private:
  enum class Why { kIdle, kLifetime, kPolicy, kShutdown, kClosed, kFull };
  void evict(Entry e, Why why);  // outside the lock
  bool expired(const Entry& e, Clock::time_point now, Why* why) const;

  const Options o_;
  RemoteMetrics* metrics_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::multimap<std::string, Entry> idle_;
  std::map<std::string, size_t> perAddress_;
  std::string current_;  // digest of the policy in force
  bool shut_ = false;
  std::shared_ptr<std::atomic<bool>> stopped_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace qtls::remoted
