// Fleet scale: N node watchers (the real FleetNode and PolicyStore, many in one process)
// against one etcd; the time from writing every node's target to every node's ACK.
// Run by tests/bench/fleet_bench.py, which starts etcd and passes its address and certificates.
//
//   fleet_watchers --etcd URL --ca F --cert F --key F --nodes N [--dir D]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/policy_store.h"
#include "fleet/etcd_client.h"
#include "fleet/layout.h"
#include "fleet/node.h"
#include "log/log.h"
#include "qtls/v1/fleet.pb.h"

namespace fs = std::filesystem;
using namespace qtls;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "fleet_watchers: %s\n", m.c_str());
  std::exit(1);
}

// Polls the status prefix until `want` nodes say `pred`; returns when each was first seen.
// (A list of every status every 50 ms: at 5000 nodes this polling is part of etcd's load.)
std::vector<double> waitFor(fleet::Etcd& etcd, const std::string& prefix, size_t want,
                            const std::function<bool(const v1::FleetStatus&)>& pred,
                            Clock::time_point from, double limit) {
  std::map<std::string, double> seen;
  while (seen.size() < want && since(from) < limit) {
    auto all = etcd.list(prefix);
    if (all.ok())
      for (const auto& kv : *all) {
        v1::FleetStatus st;
        if (!fleet::fromJson(kv.value, &st, kv.key).ok() || !pred(st)) continue;
        seen.emplace(kv.key, since(from));
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<double> out;
  for (const auto& [k, t] : seen) out.push_back(t);
  std::sort(out.begin(), out.end());
  return out;
}

double pct(const std::vector<double>& v, double p) {
  if (v.empty()) return -1;
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, ca, cert, key, dir = "/tmp/qtls-fleet-bench";
  size_t n = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--etcd")
      url = v;
    else if (a == "--ca")
      ca = v;
    else if (a == "--cert")
      cert = v;
    else if (a == "--key")
      key = v;
    else if (a == "--nodes")
      n = std::strtoul(v.c_str(), nullptr, 10);
    else if (a == "--dir")
      dir = v;
    else
      die("unknown option " + a);
  }
  log::setMinSeverity(log::Severity::kWarning);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  auto opts = fleet::parseEtcdOptions(url, ca, cert, key);
  if (!opts.ok()) die(std::string(opts.status().message()));
  const std::string prefix = "/bench" + std::to_string(n) + "-" + std::to_string(::getpid());
  fs::remove_all(dir);

  // N stores, each a qmail home and a state directory, as N daemons would have.
  std::vector<std::unique_ptr<admin::PolicyStore>> stores;
  std::vector<std::unique_ptr<fleet::FleetNode>> nodes;
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    const std::string home = dir + "/n" + std::to_string(i);
    fs::create_directories(home + "/control");
    std::ofstream(home + "/control/me") << "n" << i << ".bench\n";
    stores.push_back(std::make_unique<admin::PolicyStore>(admin::remotedSchema(), home,
                                                          home + "/state", nullptr));
    if (auto s = stores.back()->open(); !s.ok()) die(std::string(s.message()));
    fleet::NodeOptions o;
    o.etcd = *opts;
    o.prefix = prefix;
    o.node = "n" + std::to_string(i);
    o.component = "remote";
    o.leaseTtlSeconds = 30;
    o.version = "bench";
    nodes.push_back(std::make_unique<fleet::FleetNode>(o, *stores.back()));
    admin::PolicyStore* store = stores.back().get();
    fleet::FleetNode* node = nodes.back().get();
    store->setObserver([node](const std::string&, bool) { node->policyChanged(); });
  }
  const double setup = since(t0);
  t0 = Clock::now();
  for (auto& node : nodes) node->start();
  auto ctl = fleet::Etcd::connect(*opts);
  if (!ctl.ok()) die(std::string(ctl.status().message()));
  fleet::Layout layout(prefix);
  auto up = waitFor(
      **ctl, layout.statuses("remote"), n, [](const v1::FleetStatus&) { return true; }, t0, 600);
  const double announced = since(t0);
  if (up.size() < n) die("only " + std::to_string(up.size()) + " nodes announced themselves");

  // One bundle, N targets, then every ACK.
  admin::Items items{{"tlspolicy", "partner.example verify\n"}, {"notlshosts/old.example", ""}};
  auto digest = fleet::putBundle(**ctl, layout, "remote", items, "bench");
  if (!digest.ok()) die(std::string(digest.status().message()));
  v1::FleetTarget target;
  target.set_digest(*digest);
  std::vector<std::pair<std::string, std::string>> targets;
  for (size_t i = 0; i < n; ++i)
    targets.emplace_back(layout.target("remote", "n" + std::to_string(i)), fleet::toJson(target));
  t0 = Clock::now();
  if (auto s = (*ctl)->putMany(targets); !s.ok()) die(std::string(s.message()));
  const double written = since(t0);
  auto acks = waitFor(
      **ctl, layout.statuses("remote"), n,
      [&](const v1::FleetStatus& st) {
        return st.ack() == v1::FleetStatus::ACK && st.applied_digest() == *digest;
      },
      t0, 600);
  std::printf(
      "nodes %zu: stores opened %.2f s; all statuses announced %.2f s; %zu targets written "
      "%.2f s; ACKs from target writes: first %.2f s, median %.2f s, p99 %.2f s, all %zu "
      "at %.2f s\n",
      n, setup, announced, n, written, pct(acks, 0), pct(acks, 0.5), pct(acks, 0.99), acks.size(),
      acks.empty() ? -1.0 : acks.back());
  for (auto& node : nodes) node->stop();
  (*ctl)->remove(prefix).IgnoreError();
  fs::remove_all(dir);
  return acks.size() == n ? 0 : 2;
}
