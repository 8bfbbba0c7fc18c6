// Longest-common-subsequence line diff; policy files are small, so O(n*m) is fine and simple.
#include "admin/text_diff.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "util/text.h"

namespace qtls::admin {
namespace {

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t nl = s.find('\n', i);
    if (nl == std::string::npos) {
      out.push_back(s.substr(i) + "\n\\ No newline at end of file");
      break;
    }
    out.push_back(s.substr(i, nl - i));
    i = nl + 1;
  }
  return out;
}

bool binary(const std::string& s) { return s.find('\0') != std::string::npos; }

}  // namespace

std::string unifiedDiff(const std::string& before, const std::string& after,
                        const std::string& name) {
  if (before == after) return "";
  if (binary(before) || binary(after)) return "Binary contents differ\n";
  const std::vector<std::string> a = lines(before), b = lines(after);
  const size_t n = a.size(), m = b.size();
  if (n > kMaxDiffLines || m > kMaxDiffLines || n * m > kMaxDiffCells)
    return text::cat("Contents differ (", n, " -> ", m, " lines; too long to diff)\n");

  // lcs[i][j]: length of the LCS of a[i..] and b[j..].
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);

  struct Op {
    char tag;  // ' ', '-', '+'
    size_t ai, bi;
  };
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', i++, j++});
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push_back({'-', i++, j});  // removals before additions, as diff -u prints them
    } else {
      ops.push_back({'+', i, j++});
    }
  }

  std::string out = text::cat("--- a/", name, "\n+++ b/", name, "\n");
  const size_t ctx = 3;
  size_t k = 0, prevEnd = 0;
  while (k < ops.size()) {
    if (ops[k].tag == ' ') {
      ++k;
      continue;
    }
    // A hunk: from ctx lines before this change to ctx lines after the last change that is
    // no more than 2*ctx unchanged lines away.
    size_t start = std::max(prevEnd, k >= ctx ? k - ctx : 0);
    size_t end = k;
    size_t last = k;
    while (end < ops.size()) {
      if (ops[end].tag != ' ') last = end;
      if (end - last > 2 * ctx) break;
      ++end;
    }
    end = std::min(ops.size(), last + ctx + 1);
    size_t aStart = ops[start].ai, bStart = ops[start].bi, aLen = 0, bLen = 0;
    for (size_t q = start; q < end; ++q) {
      if (ops[q].tag != '+') ++aLen;
      if (ops[q].tag != '-') ++bLen;
    }
    out += text::cat("@@ -", aLen ? aStart + 1 : aStart, ",", aLen, " +",
                     bLen ? bStart + 1 : bStart, ",", bLen, " @@\n");
    for (size_t q = start; q < end; ++q) {
      const std::string& l = ops[q].tag == '+' ? b[ops[q].bi] : a[ops[q].ai];
      out += text::cat(ops[q].tag, l, "\n");
    }
    k = prevEnd = end;
  }
  return out;
}

}  // namespace qtls::admin
