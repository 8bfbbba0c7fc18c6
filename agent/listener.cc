// Inbound listeners and connection limits.
#include "listener.h"

#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstdlib>

#include "log/log.h"
#include "util/host_port.h"
#include "util/text.h"

namespace qtls::agent {

constexpr std::chrono::seconds kRefusalLogEvery{10};

using asio::redirect_error;
using asio::use_awaitable;

absl::StatusOr<ListenerSpec> parseListenerSpec(const std::string& s) {
  ListenerSpec spec;
  auto parts = text::split(s, ',');
  spec.address = std::string(parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "tls")
      spec.implicitTls = true;
    else if (text::startsWithIgnoreCase(parts[i], "ciphers="))
      spec.ciphers = std::string(parts[i].substr(8));
    else
      return absl::InvalidArgumentError(
          text::cat("--listen ", s, ": unknown option \"", parts[i], "\""));
  }
  return spec;
}

asio::ip::address clientKey(const asio::ip::address& a, int ipv6Prefix) {
  const asio::ip::address u = unmapped(a);
  if (!u.is_v6()) return u;
  auto bytes = u.to_v6().to_bytes();
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(ipv6Prefix - i * 8, 0, 8);
    bytes[i] &= static_cast<unsigned char>(0xff00 >> keep);
  }
  return asio::ip::address_v6(bytes);
}

Listeners::Listeners(asio::io_context& io, ConnectionLimits limits, ParamsFn params,
                     SessionRegistry& registry)
    : io_(io), limits_(limits), params_(std::move(params)), registry_(registry) {}

absl::Status Listeners::bind(const ListenerSpec& spec) {
  auto hp = text::parseHostPort(spec.address, "listener");
  if (!hp.ok()) return hp.status();
  std::error_code ec;
  auto addr = asio::ip::make_address(hp->host, ec);
  if (ec) return absl::InvalidArgumentError(text::cat("listener ", spec.address, ": bad address"));
  asio::ip::tcp::endpoint ep(addr, static_cast<unsigned short>(hp->port));
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(io_);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(1024, ec);
  if (ec) return absl::UnavailableError(text::cat("listener ", spec.address, ": ", ec.message()));
  auto l = std::make_unique<Listener>();
  l->spec = spec;
  l->spec.address = text::cat(addr.is_v6() ? "[" : "", addr.to_string(), addr.is_v6() ? "]" : "",
                              ":", acc->local_endpoint().port());
  l->acceptor = std::move(acc);
  specs_.push_back(l->spec);
  listeners_.push_back(std::move(l));
  return absl::OkStatus();
}

absl::StatusOr<int> Listeners::adoptSystemdSockets() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (pid == nullptr || fds == nullptr || std::atol(pid) != static_cast<long>(getpid())) return 0;
  int n = std::atoi(fds);
  std::vector<std::string_view> names;
  const char* namesEnv = std::getenv("LISTEN_FDNAMES");
  std::string namesCopy = namesEnv ? namesEnv : "";
  names = text::split(namesCopy, ':');
  for (int i = 0; i < n; ++i) {
    int fd = 3 + i;
    std::string name = i < static_cast<int>(names.size()) ? std::string(names[i]) : "";
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
      return absl::InvalidArgumentError(
          text::cat("socket activation: fd ", fd, " is not a socket"));
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(io_);
    std::error_code ec;
    acc->assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
    if (ec)
      return absl::InvalidArgumentError(
          text::cat("socket activation: fd ", fd, ": ", ec.message()));
    auto l = std::make_unique<Listener>();
    // Implicit TLS for names ending in "smtps" or "tls" ("tls" itself included).
    auto endsWith = [&name](std::string_view s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    l->spec.implicitTls = endsWith("smtps") || endsWith("tls");
    auto ep = acc->local_endpoint(ec);
    l->spec.address = text::cat("fd", fd, "=", ep.address().to_string(), ":", ep.port());
    l->acceptor = std::move(acc);
    specs_.push_back(l->spec);
    listeners_.push_back(std::move(l));
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return n;
}

void Listeners::start() {
  for (auto& l : listeners_) asio::co_spawn(io_, acceptLoop(*l), asio::detached);
}

void Listeners::stop() {
  for (auto& l : listeners_) {
    std::error_code ignored;
    l->acceptor->close(ignored);
  }
  registry_.closeAll(SessionControl::Close::kWhenIdle);
}

void Listeners::cutOff() { registry_.closeAll(SessionControl::Close::kNow); }

asio::awaitable<void> Listeners::acceptLoop(Listener& l) {
  for (;;) {
    auto strand = asio::make_strand(io_);
    asio::ip::tcp::socket sock(strand);
    std::error_code ec;
    co_await l.acceptor->async_accept(sock, redirect_error(use_awaitable, ec));
    if (!l.acceptor->is_open()) co_return;
    if (ec) {
      // Out of descriptors and the like: back off instead of spinning.
      log::warn(text::cat("listener ", l.spec.address, ": accept: ", ec.message()));
      asio::steady_timer t(io_, std::chrono::milliseconds(100));
      co_await t.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    asio::co_spawn(strand, serve(std::move(sock), l.spec), asio::detached);
  }
}

asio::awaitable<void> Listeners::serve(asio::ip::tcp::socket sock, const ListenerSpec& spec) {
  std::error_code ec;
  const auto address = sock.remote_endpoint(ec).address();
  const auto peer = clientKey(address, limits_.ipv6Prefix);
  const auto group = clientKey(address, limits_.reserveIpv6Prefix);
  std::string refusal;
  const char* reason = "";
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = perClient_.find(peer);
    const int mine = it == perClient_.end() ? 0 : it->second;
    auto git = perGroup_.find(group);
    const int ours = git == perGroup_.end() ? 0 : git->second;
    const int reserved = limits_.maxConnections * limits_.reservePercent / 100;
    const int active = active_.load();
    if (mine >= limits_.maxPerClient ||
        (ours > 0 && reserved > 0 && active < limits_.maxConnections &&
         active >= limits_.maxConnections - reserved)) {
      // The last slots are for clients that hold none: a few addresses cannot take them all.
      refusal = "421 too many connections from your address, try again later (#4.3.2)\r\n";
      reason = "too_many_from_client";
    } else if (active >= limits_.maxConnections &&
               (ours > 0 || !registry_.evictIdlest(limits_.evictAfterIdle))) {
      // Only a client holding no connection may make room by closing the idlest session.
      refusal = "421 too many connections, try again later (#4.3.2)\r\n";
      reason = "too_many";
    }
    if (refusal.empty()) {
      ++active_;
      ++perClient_[peer];
      ++perGroup_[group];
    }
  }
  if (!refusal.empty()) {
    if (AgentMetrics* m = params_().metrics) m->closedByLimit.with({reason}).add(1);
    long unlogged = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      RefusalLog& r = refusalLog_[reason];
      const auto now = std::chrono::steady_clock::now();
      if (r.last == std::chrono::steady_clock::time_point{} || now - r.last >= kRefusalLogEvery) {
        unlogged = r.unlogged;
        r = RefusalLog{now, 0};
      } else {
        ++r.unlogged;
      }
    }
    if (unlogged >= 0)
      log::warn(text::cat("listener ", spec.address, " refused client=", address.to_string(), ": ",
                          refusal.substr(4, refusal.size() - 6),
                          unlogged > 0 ? text::cat(" (and ", unlogged, " more refused for ", reason,
                                                   " since the last such line)")
                                       : ""));
    // Plain text even on a TLS port: there is no session to protect yet, and a client that
    // does not understand it only sees the connection close.
    if (!spec.implicitTls) {
      co_await asio::async_write(sock, asio::buffer(refusal), redirect_error(use_awaitable, ec));
    }
    sock.close(ec);
    co_return;
  }
  SessionParams params = params_();
  params.implicitTls = spec.implicitTls;
  params.listenerCiphers = spec.ciphers;
  params.listener = spec.address;
  co_await runSession(std::move(sock), std::move(params));
  std::lock_guard<std::mutex> lock(mu_);
  --active_;
  if (--perClient_[peer] <= 0) perClient_.erase(peer);
  if (--perGroup_[group] <= 0) perGroup_.erase(group);
}

}  // namespace qtls::agent
