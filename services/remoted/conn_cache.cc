// ConnCache (conn_cache.h).
#include "conn_cache.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdint>
#include <vector>

#include "log/log.h"
#include "util/text.h"

namespace qtls::remoted {

std::string connectionKey(const RemoteConfig& cfg, const TlsPlan& plan, const Target& t,
                          unsigned port) {
  // Which of the snapshot's contexts, by what chose it, not by address: under one digest the
  // same source has the same content, and a reload that changed nothing compiles new context
  // objects that must not end connection reuse.
  const std::string ctx =
      plan.context.ok() ? (plan.sentence.empty() ? "plain" : plan.sentence) : "-";
  std::string names;
  for (const std::string& n : plan.names) names += n + ",";
  std::string pins;
  if (plan.entry)
    for (const auto& p : plan.entry->pins)
      pins += text::cat(p.kind == policy::Pin::Kind::kCert ? "c" : "s",
                        std::string(p.sha256.begin(), p.sha256.end()), ",");
  return text::cat(cfg.digest, "|", t.address.to_string(), "|", port, "|", t.fqdn, "|",
                   cfg.helohost, "|", policy::levelName(plan.decision.level), "|", ctx, "|", names,
                   "|", pins);
}

namespace {
const char* whyName(int why) {
  static const char* names[] = {"idle", "lifetime", "policy", "shutdown", "closed", "full"};
  return names[why];
}
}  // namespace

ConnCache::ConnCache(Options o, RemoteMetrics* metrics, const Clock& clock)
    : o_(o), metrics_(metrics), clock_(clock) {
  if (metrics_) {
    for (const char* r : {"hit", "miss", "dead"}) metrics_->connCache.with({r});
    for (int w = 0; w < 6; ++w) metrics_->connEvictions.with({whyName(w)});
    metrics_->connIdle().set(0);
  }
}

ConnCache::~ConnCache() { *stopped_ = true; }

bool ConnCache::expired(const Entry& e, Clock::time_point now, Why* why) const {
  if (now - e.created >= o_.lifetime) {
    *why = Why::kLifetime;
    return true;
  }
  if (now - e.idleSince >= o_.idle) {
    *why = Why::kIdle;
    return true;
  }
  return false;
}

void ConnCache::evict(Entry e, Why why) {
  if (metrics_) metrics_->connEvictions.with({whyName(static_cast<int>(why))}).add(1);
  if (why == Why::kClosed)
    SmtpConn::closeFromOutside(std::move(e.conn));
  else
    SmtpConn::quitDetached(std::move(e.conn));
}

std::optional<ConnCache::Entry> ConnCache::take(const std::string& key) {
  if (!enabled()) return std::nullopt;
  std::vector<std::pair<Entry, Why>> gone;
  std::optional<Entry> found;
  const auto now = clock_.now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto range = idle_.equal_range(key);
    for (auto it = range.first; it != range.second && !found;) {
      Why why;
      bool fit = !expired(it->second, now, &why);
      if (fit && !it->second.conn->idleFit()) {
        fit = false;
        why = Why::kClosed;
      }
      const std::string address = it->second.address;
      if (--perAddress_[address] == 0) perAddress_.erase(address);
      if (fit)
        found = std::move(it->second);
      else
        gone.emplace_back(std::move(it->second), why);
      it = idle_.erase(it);
    }
    if (metrics_) metrics_->connIdle().set(static_cast<double>(idle_.size()));
  }
  for (auto& [e, why] : gone) evict(std::move(e), why);
  if (metrics_) metrics_->connCache.with({found ? "hit" : "miss"}).add(1);
  return found;
}

void ConnCache::put(const std::string& key, Entry e) {
  const auto now = clock_.now();
  e.idleSince = now;
  Why why = Why::kFull;
  bool keep = enabled();
  if (keep && now - e.created >= o_.lifetime) {
    keep = false;
    why = Why::kLifetime;
  }
  if (keep) {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_ || e.digest != current_) {
      keep = false;
      why = shut_ ? Why::kShutdown : Why::kPolicy;
    } else if (idle_.size() >= o_.maxIdle || perAddress_[e.address] >= o_.maxIdlePerAddress) {
      keep = false;
      if (perAddress_[e.address] == 0) perAddress_.erase(e.address);
    } else {
      ++perAddress_[e.address];
      idle_.emplace(key, std::move(e));
      if (metrics_) metrics_->connIdle().set(static_cast<double>(idle_.size()));
      return;
    }
  }
  evict(std::move(e), why);
}

void ConnCache::retire(const std::string& keepDigest) {
  std::vector<Entry> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = keepDigest;
    if (keepDigest.empty()) {
      shut_ = true;
      *stopped_ = true;
    }
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (!keepDigest.empty() && it->second.digest == keepDigest) {
        ++it;
        continue;
      }
      if (--perAddress_[it->second.address] == 0) perAddress_.erase(it->second.address);
      gone.push_back(std::move(it->second));
      it = idle_.erase(it);
    }
    if (metrics_) metrics_->connIdle().set(static_cast<double>(idle_.size()));
  }
  if (!gone.empty())
    log::info(text::cat("connection cache: ", gone.size(), " idle connection(s) closed (",
                        keepDigest.empty() ? "shutdown" : "policy changed", ")"));
  for (Entry& e : gone) evict(std::move(e), keepDigest.empty() ? Why::kShutdown : Why::kPolicy);
}

void ConnCache::sweep() {
  std::vector<std::pair<Entry, Why>> gone;
  const auto now = clock_.now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = idle_.begin(); it != idle_.end();) {
      Why why;
      if (!expired(it->second, now, &why)) {
        ++it;
        continue;
      }
      if (--perAddress_[it->second.address] == 0) perAddress_.erase(it->second.address);
      gone.emplace_back(std::move(it->second), why);
      it = idle_.erase(it);
    }
    if (metrics_) metrics_->connIdle().set(static_cast<double>(idle_.size()));
  }
  for (auto& [e, why] : gone) evict(std::move(e), why);
}

void ConnCache::start(asio::any_io_executor ex) {
  if (!enabled()) return;
  const auto every = std::max<std::chrono::milliseconds>(
      std::chrono::milliseconds(100),
      std::min<std::chrono::milliseconds>(o_.idle / 2, std::chrono::seconds(1)));
  asio::co_spawn(
      ex,
      [this, stopped = stopped_, every]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (!*stopped) {
          t.expires_after(every);
          std::error_code ec;
          co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          if (*stopped) break;
          sweep();
        }
      },
      asio::detached);
}

size_t ConnCache::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

}  // namespace qtls::remoted
