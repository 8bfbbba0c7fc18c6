// Target resolution.
#include "targets.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <cstring>

namespace qtls::remoted {

IpMe IpMe::fromInterfaces(const std::vector<asio::ip::address>& exclude) {
  IpMe me;
  me.addrs_.insert(asio::ip::address_v4::any());
  me.addrs_.insert(asio::ip::address_v6::any());
  struct ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) == 0) {
    for (auto* i = ifs; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr) continue;
      if (i->ifa_addr->sa_family == AF_INET) {
        asio::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
        me.addrs_.insert(asio::ip::address_v4(b));
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
        me.addrs_.insert(asio::ip::address_v6(b));
      }
    }
    freeifaddrs(ifs);
  }
  for (const auto& a : exclude) me.addrs_.erase(a);
  return me;
}

std::optional<asio::ip::address> parseIpLiteral(const std::string& s) {
  std::string inner = s;
  bool bracketed = s.size() >= 2 && s.front() == '[' && s.back() == ']';
  if (bracketed) inner = s.substr(1, s.size() - 2);
  std::error_code ec;
  if (bracketed && inner.size() > 5 && strncasecmp(inner.c_str(), "IPv6:", 5) == 0) {
    auto a = asio::ip::make_address_v6(inner.substr(5), ec);
    if (!ec) return asio::ip::address(a);
    return std::nullopt;
  }
  auto a = asio::ip::make_address_v4(inner, ec);
  if (!ec) return asio::ip::address(a);
  return std::nullopt;
}

void orderByPreference(std::vector<MxRecord>& mx, std::mt19937& rng) {
  std::shuffle(mx.begin(), mx.end(), rng);
  std::stable_sort(mx.begin(), mx.end(), [](const MxRecord& a, const MxRecord& b) {
    return a.preference < b.preference;
  });
}

namespace {

using namespace asio::experimental::awaitable_operators;

// A and AAAA for one name, IPv4 first (qmail-remote was IPv4-only; IPv6 follows).
asio::awaitable<DnsResult> lookupAddresses(Resolver& resolver, const std::string& name) {
  // Both queries in flight at once.
  auto [a, aaaa] = co_await (resolver.asyncQuery(name, Resolver::Type::kA, asio::use_awaitable) &&
                             resolver.asyncQuery(name, Resolver::Type::kAaaa, asio::use_awaitable));
  DnsResult out;
  out.addresses = a.addresses;
  out.addresses.insert(out.addresses.end(), aaaa.addresses.begin(), aaaa.addresses.end());
  if (!out.addresses.empty())
    out.status = DnsStatus::kOk;
  else if (a.status == DnsStatus::kHard && aaaa.status == DnsStatus::kHard)
    out.status = DnsStatus::kHard;
  else
    out.status = DnsStatus::kSoft;
  co_return out;
}

}  // namespace

asio::awaitable<TargetList> findTargets(Resolver& resolver, const std::string& host,
                                        const std::optional<control::Route>& route, unsigned mxPort,
                                        const IpMe& ipme) {
  TargetList out;
  out.port = route ? route->port : mxPort;
  std::vector<Target> all;
  const std::string& name = route ? route->relay : host;

  auto fail = [&out](Failure f, std::string name = "") {
    out.fail = f;
    out.failName = std::move(name);
    return out;
  };
  // A relay, or a domain without MX records, is resolved by name with preference 0.
  bool byName = route.has_value();
  if (auto ip = parseIpLiteral(name)) {
    all.push_back({*ip, "", 0});
    byName = false;
  } else if (!route) {
    DnsResult mx = co_await resolver.asyncQuery(name, Resolver::Type::kMx, asio::use_awaitable);
    if (mx.status == DnsStatus::kSoft) co_return fail(Failure::kDnsTemp);
    if (mx.status == DnsStatus::kHard) {
      byName = true;
    } else {
      static thread_local std::mt19937 rng(std::random_device{}());
      orderByPreference(mx.mx, rng);
      bool soft = false;
      for (const auto& m : mx.mx) {
        if (auto ip = parseIpLiteral(m.host)) {
          all.push_back({*ip, "", m.preference});
          continue;
        }
        DnsResult r = co_await lookupAddresses(resolver, m.host);
        if (r.status == DnsStatus::kSoft) soft = true;  // remembered; the others still count
        for (const auto& a : r.addresses) all.push_back({a, m.host, m.preference});
      }
      if (all.empty()) co_return fail(soft ? Failure::kDnsTemp : Failure::kNoMx);
    }
  }
  if (byName) {
    DnsResult r = co_await lookupAddresses(resolver, name);
    if (r.status == DnsStatus::kHard) co_return fail(Failure::kDnsPerm, name);
    if (r.status != DnsStatus::kOk) co_return fail(Failure::kDnsTemp);
    for (const auto& a : r.addresses) all.push_back({a, name, 0});
  }

  // Not delivering to myself: only preferences strictly below the best one of mine are tried;
  // a smtproutes relay switches this off (prefme 300000).
  int prefme = 100000;
  if (route) {
    prefme = 300000;
  } else {
    for (const auto& t : all)
      if (ipme.contains(t.address)) prefme = std::min(prefme, t.preference);
  }
  for (auto& t : all)
    if (t.preference < prefme) out.targets.push_back(t);
  if (out.targets.empty()) out.fail = Failure::kAmbiguousMx;
  co_return out;
}

}  // namespace qtls::remoted
