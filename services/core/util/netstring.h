// Netstrings ("<length>:<bytes>,", qmail's framing), the one codec for the shim protocol, the
// policy snapshots and the policy digest. Header-only: the shim, which links nothing of
// libqtls_core, uses it too.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace qtls::text {

inline void appendNetstring(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out.push_back(':');
  out.append(s);
  out.push_back(',');
}

// Takes one netstring off the front of `in` into `out`. False (and `in` unchanged) when `in`
// does not start with a complete one, or its length has more than `maxDigits` digits.
inline bool readNetstring(std::string_view& in, std::string& out, size_t maxDigits = 10) {
  const size_t colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > maxDigits) return false;
  size_t len = 0;
  for (size_t i = 0; i < colon; ++i) {
    if (in[i] < '0' || in[i] > '9') return false;
    len = len * 10 + static_cast<size_t>(in[i] - '0');
  }
  if (in.size() - colon - 1 <= len || in[colon + 1 + len] != ',') return false;
  out.assign(in.substr(colon + 1, len));
  in.remove_prefix(colon + 1 + len + 1);
  return true;
}

}  // namespace qtls::text
