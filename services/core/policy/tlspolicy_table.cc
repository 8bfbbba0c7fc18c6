// Parser and lookup for control/tlspolicy.
#include "policy/tlspolicy_table.h"

#include <openssl/ssl.h>

#include "util/host_name.h"
#include "util/text.h"

namespace qtls::policy {
namespace {

bool parseHexDigest(std::string_view hex, std::array<uint8_t, 32>& out) {
  std::string clean;
  for (char c : hex)
    if (c != ':') clean.push_back(c);
  if (clean.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int v = 0;
    for (int j = 0; j < 2; ++j) {
      char c = text::lowerChar(clean[2 * i + j]);
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return true;
}

bool safeKey(std::string_view key) {
  if (key == "*") return true;
  if (!key.empty() && key[0] == '.') key.remove_prefix(1);
  return text::validHostName(key);
}

}  // namespace

absl::StatusOr<TlsPolicyTable> TlsPolicyTable::parse(std::string_view content,
                                                     std::string_view file) {
  TlsPolicyTable table;
  int lineNo = 0;
  for (std::string_view line : text::split(content, '\n')) {
    ++lineNo;
    auto fail = [&](std::string_view why) {
      return absl::InvalidArgumentError(text::cat(file, " line ", lineNo, ": ", why));
    };
    std::vector<std::string_view> words = text::splitAny(line, " \t\r");
    if (words.empty() || words[0][0] == '#') continue;
    if (words.size() < 2) return fail("expected \"<domain> <level> [attr=value ...]\"");
    TableEntry e;
    e.key = text::lower(words[0]);
    e.line = lineNo;
    if (!safeKey(e.key)) return fail(text::cat("invalid destination \"", words[0], "\""));
    if (table.entries_.count(e.key))
      return fail(text::cat("duplicate destination \"", e.key, "\" (first on line ",
                            table.entries_[e.key].line, ")"));
    auto level = parseLevel(words[1]);
    if (!level)
      return fail(text::cat("unknown level \"", words[1],
                            "\" (expected none, may, encrypt, verify or fingerprint)"));
    e.level = *level;
    for (size_t i = 2; i < words.size(); ++i) {
      size_t eq = words[i].find('=');
      if (eq == std::string_view::npos || eq == 0 || eq + 1 == words[i].size())
        return fail(text::cat("expected attr=value, got \"", words[i], "\""));
      std::string_view attr = words[i].substr(0, eq), value = words[i].substr(eq + 1);
      if (attr == "ca") {
        if (e.level != TlsLevel::kVerify) return fail("ca= is only valid with level verify");
        if (value[0] != '/') return fail("ca= needs an absolute path");
        e.ca = std::string(value);
      } else if (attr == "match") {
        if (e.level != TlsLevel::kVerify) return fail("match= is only valid with level verify");
        for (std::string_view m : text::split(value, ':')) {
          std::string_view host = m.substr(0, 2) == "*." ? m.substr(2) : m;
          if (!text::validHostName(host)) return fail(text::cat("invalid match name \"", m, "\""));
          e.match.emplace_back(m);
        }
      } else if (attr == "fingerprint" || attr == "spki") {
        if (e.level != TlsLevel::kFingerprint)
          return fail(text::cat(attr, "= is only valid with level fingerprint"));
        Pin p;
        p.kind = attr == "spki" ? Pin::Kind::kSpki : Pin::Kind::kCert;
        std::string_view hex = value;
        if (text::startsWithIgnoreCase(hex, "sha256:")) hex.remove_prefix(7);
        if (!parseHexDigest(hex, p.sha256))
          return fail(text::cat(attr, "= needs a SHA-256 digest in hex (64 digits)"));
        e.pins.push_back(p);
      } else if (attr == "min_version") {
        if (value == "TLS1.2")
          e.minVersion = TLS1_2_VERSION;
        else if (value == "TLS1.3")
          e.minVersion = TLS1_3_VERSION;
        else if (value == "TLS1.0")
          e.minVersion = TLS1_VERSION;
        else if (value == "TLS1.1")
          e.minVersion = TLS1_1_VERSION;
        else
          return fail(text::cat("unknown min_version \"", value, "\" (TLS1.0 to TLS1.3)"));
      } else {
        return fail(text::cat("unknown attribute \"", attr, "\""));
      }
    }
    if (e.level == TlsLevel::kFingerprint && e.pins.empty())
      return fail("level fingerprint needs at least one fingerprint= or spki=");
    std::string key = e.key;
    table.entries_.emplace(std::move(key), std::move(e));
  }
  return table;
}

const TableEntry* TlsPolicyTable::lookup(std::string_view domain) const {
  if (entries_.empty()) return nullptr;
  std::string d = text::lower(domain);
  while (!d.empty() && d.back() == '.') d.pop_back();
  if (auto it = entries_.find(d); it != entries_.end()) return &it->second;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] != '.') continue;
    if (auto it = entries_.find(d.substr(i)); it != entries_.end()) return &it->second;
  }
  if (auto it = entries_.find("*"); it != entries_.end()) return &it->second;
  return nullptr;
}

}  // namespace qtls::policy
