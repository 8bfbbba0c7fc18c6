// c-ares resolver thread.
#include "resolver.h"

#include <arpa/nameser.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "util/text.h"

namespace qtls::remoted {
namespace {

struct Query {
  Resolver::Type type;
  Resolver::Callback cb;
};

DnsStatus classify(int status) {
  if (status == ARES_ENOTFOUND || status == ARES_ENODATA) return DnsStatus::kHard;
  return DnsStatus::kSoft;
}

void onAnswer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  DnsResult r;
  if (status != ARES_SUCCESS) {
    r.status = classify(status);
    q->cb(std::move(r));
    return;
  }
  r.status = DnsStatus::kOk;
  int ps = ARES_SUCCESS;
  if (q->type == Resolver::Type::kMx) {
    struct ares_mx_reply* mx = nullptr;
    ps = ares_parse_mx_reply(abuf, alen, &mx);
    for (auto* m = mx; ps == ARES_SUCCESS && m != nullptr; m = m->next) {
      std::string host = m->host ? m->host : "";
      while (!host.empty() && host.back() == '.') host.pop_back();
      r.mx.push_back({host, m->priority});
    }
    if (mx) ares_free_data(mx);
  } else if (q->type == Resolver::Type::kA) {
    struct ares_addrttl ttls[64];
    int n = 64;
    ps = ares_parse_a_reply(abuf, alen, nullptr, ttls, &n);
    for (int i = 0; ps == ARES_SUCCESS && i < n; ++i) {
      asio::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), &ttls[i].ipaddr, 4);
      r.addresses.push_back(asio::ip::address_v4(b));
    }
  } else {
    struct ares_addr6ttl ttls[64];
    int n = 64;
    ps = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &n);
    for (int i = 0; ps == ARES_SUCCESS && i < n; ++i) {
      asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), &ttls[i].ip6addr, 16);
      r.addresses.push_back(asio::ip::address_v6(b));
    }
  }
  if (ps != ARES_SUCCESS)
    r.status = classify(ps);
  else if (r.mx.empty() && r.addresses.empty())
    r.status = DnsStatus::kHard;
  q->cb(std::move(r));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Resolver>> AresResolver::create(const Options& options) {
  static const int libInit = ares_library_init(ARES_LIB_INIT_ALL);
  if (libInit != ARES_SUCCESS)
    return absl::InternalError(text::cat("dns: c-ares init: ", ares_strerror(libInit)));
  std::unique_ptr<AresResolver> r(new AresResolver());
  struct ares_options opts;
  std::memset(&opts, 0, sizeof opts);
  opts.timeout = options.timeoutMs;
  opts.tries = options.tries;
  opts.flags = ARES_FLAG_NOSEARCH;
  int st =
      ares_init_options(&r->channel_, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
  if (st != ARES_SUCCESS)
    return absl::InternalError(text::cat("dns: c-ares channel: ", ares_strerror(st)));
  if (!options.servers.empty()) {
    st = ares_set_servers_ports_csv(r->channel_, options.servers.c_str());
    if (st != ARES_SUCCESS)
      return absl::InvalidArgumentError(
          text::cat("dns: invalid server list \"", options.servers, "\": ", ares_strerror(st)));
  }
  r->wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wakeFd_ < 0) return absl::InternalError(text::cat("dns: eventfd: ", std::strerror(errno)));
  r->thread_ = std::thread([p = r.get()] { p->run(); });
  return std::unique_ptr<Resolver>(std::move(r));
}

AresResolver::~AresResolver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
  if (channel_) ares_destroy(channel_);  // outstanding callbacks get ARES_EDESTRUCTION
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void AresResolver::wake() {
  uint64_t one = 1;
  (void)!::write(wakeFd_, &one, sizeof one);
}

void AresResolver::query(const std::string& name, Type type, Callback cb) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back({name, type, std::move(cb)});
  }
  wake();
}

void AresResolver::run() {
  for (;;) {
    std::deque<Pending> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      batch.swap(pending_);
    }
    for (auto& p : batch) {
      int t = p.type == Type::kMx ? ns_t_mx : p.type == Type::kA ? ns_t_a : ns_t_aaaa;
      ares_query(channel_, p.name.c_str(), ns_c_in, t, onAnswer,
                 new Query{p.type, std::move(p.cb)});
    }
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(channel_, socks, ARES_GETSOCK_MAXNUM);
    std::vector<pollfd> fds;
    fds.push_back({wakeFd_, POLLIN, 0});
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (ev) fds.push_back({socks[i], ev, 0});
    }
    struct timeval tv;
    struct timeval* tvp = ares_timeout(channel_, nullptr, &tv);
    int timeoutMs = tvp ? static_cast<int>(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : -1;
    int n = ::poll(fds.data(), fds.size(), timeoutMs);
    if (n < 0) continue;  // EINTR
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      (void)!::read(wakeFd_, &v, sizeof v);
    }
    bool any = false;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      any = true;
      bool rd = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
      bool wr = fds[i].revents & POLLOUT;
      ares_process_fd(channel_, rd ? fds[i].fd : ARES_SOCKET_BAD, wr ? fds[i].fd : ARES_SOCKET_BAD);
    }
    if (!any) ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  }
}

}  // namespace qtls::remoted
