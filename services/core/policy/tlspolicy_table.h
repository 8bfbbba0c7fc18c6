// control/tlspolicy: per-destination TLS rules that qmail's files cannot express.
// One destination per line, whitespace-separated:  <domain> <level> [attr=value ...]
// The whole table is validated at once: one bad line refuses the whole file, with the file
// name, line number and reason. docs/policy.md is the reference.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "policy/tls_level.h"

namespace qtls::policy {

struct Pin {
  enum class Kind { kCert, kSpki };
  Kind kind = Kind::kCert;
  std::array<uint8_t, 32> sha256{};
};

struct TableEntry {
  std::string key;  // lowercased: "example.com", ".example.com" or "*"
  int line = 0;     // line number in the file, for messages
  TlsLevel level = TlsLevel::kMay;
  std::string ca;                  // verify: CA file; empty = the system trust store
  std::vector<std::string> match;  // verify: names accepted; empty = the MX host name
  std::vector<Pin> pins;           // fingerprint: at least one
  int minVersion = 0;              // TLS1_2_VERSION etc.; 0 = the daemon's default
};

class TlsPolicyTable {
 public:
  // `file` is used only in error messages.
  static absl::StatusOr<TlsPolicyTable> parse(std::string_view content, std::string_view file);

  // The entry for delivery domain `domain`: exact key, then each ".suffix" key longest first,
  // then "*"; nullptr when none.
  const TableEntry* lookup(std::string_view domain) const;
  size_t size() const { return entries_.size(); }
  // Keyed by destination; the entries' addresses are stable for the table's lifetime.
  const std::unordered_map<std::string, TableEntry>& entries() const { return entries_; }

 private:
  std::unordered_map<std::string, TableEntry> entries_;
};

}  // namespace qtls::policy
