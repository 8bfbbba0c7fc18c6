// Which nodes of a wave are lost (rollout_liveness.h).
#include "rollout_liveness.h"

#include <cstdio>
#include <map>

#include "rollout_rules.h"
#include "util/text.h"

namespace qtls::ctl {
namespace {

// The nodes among `nodes` with a successful scrape after `since` (Unix seconds): `up` is 1
// only for a scrape that worked, and a failed one writes 0 at once.
std::string freshQuery(const std::vector<std::string>& nodes, double since) {
  char t[32];
  std::snprintf(t, sizeof t, "%.3f", since);
  return text::cat("count(timestamp(up{qtls_node=~\"", regexOf(nodes), "\"} == 1) > ", t, ")");
}

}  // namespace

absl::StatusOr<std::vector<LostNode>> lostNodes(FleetContext& fleet, const std::string& component,
                                                const std::string& digest,
                                                const std::vector<std::string>& nodes,
                                                const PromQuery* prom, double since) {
  auto view = fleetView(fleet, component);
  if (!view.ok()) return view.status();
  std::map<std::string, const NodeView*> by;
  for (const NodeView& n : *view) by[n.node] = &n;
  std::vector<LostNode> lost;
  std::vector<std::string> leased;
  for (const std::string& node : nodes) {
    auto it = by.find(node);
    const NodeView* n = it == by.end() ? nullptr : it->second;
    if (n == nullptr || !n->hasStatus)
      lost.push_back({node, "no live status lease"});
    else if (n->status.target_digest() != digest || n->status.ack() != v1::FleetStatus::ACK)
      lost.push_back({node, "its status no longer ACKs " + digest});
    else
      leased.push_back(node);
  }
  if (prom == nullptr || leased.empty()) return lost;
  auto all = (*prom)(freshQuery(leased, since));
  if (!all.ok()) return all.status();
  if (*all && **all >= static_cast<double>(leased.size())) return lost;
  for (const std::string& node : leased) {  // name the ones without a fresh scrape
    auto one = (*prom)(freshQuery({node}, since));
    if (!one.ok()) return one.status();
    if (!*one || **one < 1)
      lost.push_back({node, "not scraped by Prometheus since the soak began"});
  }
  return lost;
}

std::string describeLost(const std::vector<LostNode>& lost) {
  std::string out;
  for (const LostNode& l : lost)
    out += text::cat(out.empty() ? "" : ", ", l.node, " (", l.why, ")");
  return out;
}

}  // namespace qtls::ctl
