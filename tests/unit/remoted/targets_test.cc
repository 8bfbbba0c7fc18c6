// findTargets through a fake resolver (tests/fakes): MX by preference with each host's
// addresses, the A fallback of a domain without MX, qmail's answers for DNS trouble, the
// "not delivering to myself" cut, IP literals and smtproutes relays.
#include "targets.h"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include "../../fakes/fake_resolver.h"

namespace qtls::remoted {
namespace {

using testing::FakeResolver;
using Type = Resolver::Type;

class TargetsTest : public ::testing::Test {
 protected:
  TargetList find(const std::string& host, std::optional<control::Route> route = std::nullopt) {
    asio::io_context io;
    auto f = asio::co_spawn(io, findTargets(dns_, host, route, 25, ipme_), asio::use_future);
    io.run();
    return f.get();
  }
  static std::vector<std::string> addresses(const TargetList& l) {
    std::vector<std::string> out;
    for (const Target& t : l.targets) out.push_back(t.address.to_string() + "/" + t.fqdn);
    return out;
  }

  FakeResolver dns_;
  // This machine's own addresses would decide the cut: qmail's ipme, fixed.
  IpMe ipme_ = IpMe::of({asio::ip::make_address("0.0.0.0"), asio::ip::make_address("::"),
                         asio::ip::make_address("127.0.0.1")});
};

TEST_F(TargetsTest, MxHostsInPreferenceOrderWithTheirAddresses) {
  dns_.mx("example.test", {{"mx2.example.test", 20}, {"mx1.example.test", 10}});
  dns_.a("mx1.example.test", {"192.0.2.1", "192.0.2.2"});
  dns_.a("mx2.example.test", {"192.0.2.3"});
  TargetList l = find("example.test");
  EXPECT_EQ(l.fail, Failure::kNone);
  EXPECT_EQ(addresses(l),
            (std::vector<std::string>{"192.0.2.1/mx1.example.test", "192.0.2.2/mx1.example.test",
                                      "192.0.2.3/mx2.example.test"}));
  EXPECT_EQ(l.port, 25u);
}

TEST_F(TargetsTest, NoMxFallsBackToTheDomainsAddress) {
  dns_.a("example.test", {"192.0.2.9"});
  TargetList l = find("example.test");
  EXPECT_EQ(addresses(l), (std::vector<std::string>{"192.0.2.9/example.test"}));
}

TEST_F(TargetsTest, DnsTroubleIsTheTablesRows) {
  dns_.fail("soft.test", Type::kMx, DnsStatus::kSoft);
  EXPECT_EQ(find("soft.test").fail, Failure::kDnsTemp);
  // No MX and no address: the domain does not exist for mail.
  TargetList none = find("nowhere.test");
  EXPECT_EQ(none.fail, Failure::kDnsPerm);
  EXPECT_EQ(none.failName, "nowhere.test");
  // MX hosts without addresses: permanent, unless one of them failed softly.
  dns_.mx("hollow.test", {{"mx.hollow.test", 10}});
  EXPECT_EQ(find("hollow.test").fail, Failure::kNoMx);
  dns_.mx("flaky.test", {{"mx.flaky.test", 10}, {"mx2.flaky.test", 20}});
  dns_.fail("mx.flaky.test", Type::kA, DnsStatus::kSoft);
  EXPECT_EQ(find("flaky.test").fail, Failure::kDnsTemp);
  // One MX host failing softly does not hide the others.
  dns_.a("mx2.flaky.test", {"192.0.2.5"});
  EXPECT_EQ(addresses(find("flaky.test")), (std::vector<std::string>{"192.0.2.5/mx2.flaky.test"}));
}

TEST_F(TargetsTest, NotDeliveringToMyself) {
  // 127.0.0.1 is one of mine: only preferences below its MX are tried; none left is ambiguous.
  dns_.mx("loop.test", {{"me.loop.test", 10}, {"other.loop.test", 5}});
  dns_.a("me.loop.test", {"127.0.0.1"});
  dns_.a("other.loop.test", {"192.0.2.7"});
  EXPECT_EQ(addresses(find("loop.test")), (std::vector<std::string>{"192.0.2.7/other.loop.test"}));
  dns_.mx("self.test", {{"me.loop.test", 10}});
  EXPECT_EQ(find("self.test").fail, Failure::kAmbiguousMx);
}

TEST_F(TargetsTest, LiteralsAndRelaysAskNoMx) {
  TargetList l = find("[192.0.2.44]");
  EXPECT_EQ(addresses(l), (std::vector<std::string>{"192.0.2.44/"}));
  control::Route r;
  r.relay = "relay.test";
  r.port = 2525;
  dns_.a("relay.test", {"192.0.2.8"});
  l = find("example.test", r);
  EXPECT_EQ(addresses(l), (std::vector<std::string>{"192.0.2.8/relay.test"}));
  EXPECT_EQ(l.port, 2525u);
  for (const auto& [name, type] : dns_.asked()) EXPECT_NE(type, Type::kMx) << name;
}

}  // namespace
}  // namespace qtls::remoted
