// ClientSessionCache (session_cache.h).
#include "tls/session_cache.h"

#include <ctime>

namespace qtls::tls {
namespace {

struct Binding {
  ClientSessionCache* cache;
  std::string key;
};

int bindingIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's new-session callback: 1 = we took the reference.
int onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* b = static_cast<Binding*>(SSL_get_ex_data(ssl, bindingIndex()));
  if (b == nullptr) return 0;
  b->cache->put(b->key, session);
  return 0;  // put() took a reference of its own
}

bool usable(SSL_SESSION* s) {
  if (SSL_SESSION_is_resumable(s) != 1) return false;
  const long long expires =
      static_cast<long long>(SSL_SESSION_get_time(s)) + SSL_SESSION_get_timeout(s);
  return expires > static_cast<long long>(std::time(nullptr));
}

}  // namespace

ClientSessionCache::~ClientSessionCache() {
  for (auto& [key, list] : sessions_)
    for (SSL_SESSION* s : list) SSL_SESSION_free(s);
}

void enableClientSessions(SSL_CTX* ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, onNewSession);
}

SslSessionPtr ClientSessionCache::take(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return SslSessionPtr(nullptr, freeSession);
  while (!it->second.empty()) {
    SSL_SESSION* s = it->second.back();  // the newest first
    it->second.pop_back();
    if (usable(s)) return SslSessionPtr(s, freeSession);
    SSL_SESSION_free(s);
  }
  return SslSessionPtr(nullptr, freeSession);
}

void ClientSessionCache::put(const std::string& key, SSL_SESSION* s) {
  if (!usable(s)) return;
  SSL_SESSION_up_ref(s);
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = sessions_.try_emplace(key);
  if (added) {
    order_.push_back(key);
    if (order_.size() > maxKeys_) {
      auto old = sessions_.find(order_.front());
      if (old != sessions_.end()) {
        for (SSL_SESSION* o : old->second) SSL_SESSION_free(o);
        sessions_.erase(old);
      }
      order_.pop_front();
    }
  }
  it->second.push_back(s);
  while (it->second.size() > perKey_) {
    SSL_SESSION_free(it->second.front());
    it->second.pop_front();
  }
}

std::shared_ptr<void> ClientSessionCache::bind(SSL* ssl, const std::string& key) {
  auto b = std::make_shared<Binding>(Binding{this, key});
  SSL_set_ex_data(ssl, bindingIndex(), b.get());
  return b;
}

size_t ClientSessionCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [k, v] : sessions_) n += v.size();
  return n;
}

}  // namespace qtls::tls
