// Where to deliver: smtproutes relay or MX (with A/AAAA fallback), ordered by preference with
// equal preferences shuffled, and qmail's "not delivering to myself" filter (spec 2.3-2.5).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/smtproutes.h"
#include "outcome.h"
#include "resolver.h"

namespace qtls::remoted {

struct Target {
  asio::ip::address address;
  std::string fqdn;  // the name TLS policy and verification use; empty for IP targets
  int preference = 0;
};

struct TargetList {
  std::vector<Target> targets;  // in the order to try
  unsigned port = 25;
  // When no target can be tried: the failure table's row, and the name it is about.
  Failure fail = Failure::kNone;
  std::string failName;
};

// The local addresses qmail calls "ipme": 0.0.0.0, :: and every interface address, except
// those the operator excluded.
class IpMe {
 public:
  static IpMe fromInterfaces(const std::vector<asio::ip::address>& exclude);
  // Exactly these addresses (tests, which must not depend on the machine's interfaces).
  static IpMe of(const std::vector<asio::ip::address>& addresses) {
    IpMe me;
    me.addrs_.insert(addresses.begin(), addresses.end());
    return me;
  }
  bool contains(const asio::ip::address& a) const { return addrs_.count(a) > 0; }

 private:
  std::set<asio::ip::address> addrs_;
};

// "a.b.c.d", "[a.b.c.d]" or "[IPv6:...]": the address, else nullopt.
std::optional<asio::ip::address> parseIpLiteral(const std::string& s);

// Orders MX records by preference, shuffling equal preferences.
void orderByPreference(std::vector<MxRecord>& mx, std::mt19937& rng);

asio::awaitable<TargetList> findTargets(Resolver& resolver, const std::string& host,
                                        const std::optional<control::Route>& route, unsigned mxPort,
                                        const IpMe& ipme);

}  // namespace qtls::remoted
