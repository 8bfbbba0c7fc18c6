// qmail-rspawn's translation of qmail-remote's output into the report qmail-send gets (spec
// 1.3), for a child that exited 0: the one implementation, used by qtls-rspawn to answer
// qmail-send and by qtls-remoted to name the verdict of a report (K delivered, Z deferred, D
// bounced). Header-only, libc and std::string only (qtls-rspawn links nothing else but the
// failure table).
#pragma once

#include <string>
#include <string_view>

#include "report/failure_table.h"

namespace qtls::shimproto {

// "<K|Z|D><text>" as qmail-rspawn builds it from qmail-remote's output `s`.
inline std::string rspawnReport(std::string_view s) {
  if (s.empty()) return report::judge(report::Failure::kSpawnNoOutput).line();
  // result: the first record starting with K, Z or D decides; none found is permanent.
  // Ranks: permanent < temporary < success.
  auto rank = [](char c) { return c == 'K' ? 2 : c == 'Z' ? 1 : 0; };
  char result = 'D';
  for (size_t pos = 0; pos < s.size();) {
    const size_t nul = s.find('\0', pos);
    if (nul == std::string_view::npos) break;
    if (s[pos] == 'K' || s[pos] == 'Z' || s[pos] == 'D') {
      result = s[pos];
      break;
    }
    pos = nul + 1;
  }
  // final: only the first byte of the whole output can override it.
  char final = result;
  if (s[0] == 's') final = 'Z';
  if (s[0] == 'h') final = 'D';
  std::string out(1, final);
  const size_t first = s.find('\0');
  if (first == std::string_view::npos) return out;    // no record at all: no text
  if (first > 0) out.append(s.substr(1, first - 1));  // a record may be empty
  // The second record's text too, when it starts with K, Z or D and the result is not better
  // than the final letter (a recipient record followed by the message record).
  const size_t second = first + 1;
  if (rank(result) <= rank(final) && second < s.size() &&
      (s[second] == 'K' || s[second] == 'Z' || s[second] == 'D')) {
    const size_t end = s.find('\0', second);
    if (end != std::string_view::npos) out.append(s.substr(second + 1, end - second - 1));
  }
  return out;
}

}  // namespace qtls::shimproto
