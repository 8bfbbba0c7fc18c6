// Netstrings ("<length>:<bytes>,", qmail's framing), the one codec for the shim protocol, the
// policy snapshots and the policy digest. Header-only: the shim, which links nothing of
// libqtls_core, uses it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qtls::text {

inline void appendNetstring(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out.push_back(':');
  out.append(s);
  out.push_back(',');
}

enum class NetstringRead { kComplete, kIncomplete, kMalformed };

// Takes one netstring off the front of `in` into `out` (`in` unchanged unless kComplete).
// kIncomplete: more bytes could complete it; kMalformed: none could (a non-digit in the
// length, more than `maxDigits` digits, a length over `maxLength`, no ',' after the bytes).
inline NetstringRead takeNetstring(std::string_view& in, std::string& out, size_t maxDigits = 10,
                                   size_t maxLength = SIZE_MAX) {
  size_t len = 0, i = 0;
  for (;; ++i) {
    if (i == in.size()) return NetstringRead::kIncomplete;
    const char c = in[i];
    if (c == ':' && i > 0) break;
    if (c < '0' || c > '9' || i >= maxDigits) return NetstringRead::kMalformed;
    len = len * 10 + static_cast<size_t>(c - '0');
  }
  if (len > maxLength) return NetstringRead::kMalformed;
  const size_t start = i + 1;
  if (in.size() - start <= len) return NetstringRead::kIncomplete;
  if (in[start + len] != ',') return NetstringRead::kMalformed;
  out.assign(in.substr(start, len));
  in.remove_prefix(start + len + 1);
  return NetstringRead::kComplete;
}

// A complete netstring taken off the front of `in`; false (and `in` unchanged) otherwise.
inline bool readNetstring(std::string_view& in, std::string& out, size_t maxDigits = 10) {
  return takeNetstring(in, out, maxDigits) == NetstringRead::kComplete;
}

}  // namespace qtls::text
