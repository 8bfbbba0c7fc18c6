// The inbound configuration snapshot: qmail-smtpd's control files plus TLS contexts, loaded and
// validated whole and swapped in as one shared_ptr. A session keeps the snapshot it started
// with; an invalid new snapshot (a bad certificate, say) leaves the old one in place.
#pragma once

#include <asio/ip/address.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tls/server_context.h"
#include "util/snapshot_store.h"

namespace qtls::agent {

struct Cidr {
  asio::ip::address network;
  int prefix = 0;
  bool contains(const asio::ip::address& a) const;
};
// An IPv4-mapped IPv6 address (from a dual-stack listener) as the IPv4 address it is.
asio::ip::address unmapped(const asio::ip::address& a);

// "192.0.2.0/24", "2001:db8::/32" or a plain address.
std::optional<Cidr> parseCidr(const std::string& s);

struct SmtpdConfig {
  std::string home, controlDir;
  std::string greeting;   // control/smtpgreeting, else control/me
  std::string localName;  // "by" name in Received: control/me (tcpserver -l convention)
  long timeout = 1200;    // control/timeoutsmtpd
  long databytes = 0;     // control/databytes, 0 = no limit
  bool haveRcpthosts = false;
  std::set<std::string> rcpthosts;    // rcpthosts + morercpthosts, lowercased
  std::set<std::string> badmailfrom;  // lowercased
  std::vector<Cidr> relayClients;     // control/relayclients
  bool certRelay = false;             // tlsclients exists and clientca.pem loaded
  std::set<std::string> tlsclients;   // lowercased
  // TLS contexts by listener cipher override ("" = control/tlsserverciphers); empty map when
  // control/servercert.pem does not exist.
  std::map<std::string, std::shared_ptr<tls::ServerContexts>> tls;
  uint64_t generation = 0;  // of the policy this was compiled from
  std::string digest;       // "sha256:..." of that policy's content

  // Loaded from a private copy of control/ (the policy store compiles each generation from
  // one): names the live qmail home in everything the snapshot reports.
  void rebase(const std::string& liveHome) {
    home = liveHome;
    controlDir = liveHome + "/control";
  }

  const tls::ServerContexts* tlsFor(const std::string& listenerCiphers) const;
};
using SmtpdConfigConstSharedPtr = std::shared_ptr<const SmtpdConfig>;

// `listenerCiphers`: every distinct per-listener cipher override, to build contexts for.
absl::StatusOr<std::shared_ptr<SmtpdConfig>> loadSmtpdConfig(
    const std::string& home, const std::set<std::string>& listenerCiphers);

using SmtpdConfigStore = SnapshotStore<SmtpdConfig>;

}  // namespace qtls::agent
