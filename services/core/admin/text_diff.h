// A unified line diff (as `diff -u` prints it, three lines of context) for policy dry runs.
#pragma once

#include <string>

namespace qtls::admin {

// Empty when the texts are equal. Texts of more than kMaxDiffLines lines, or with bytes that
// are not text, get a one-line summary instead.
std::string unifiedDiff(const std::string& before, const std::string& after,
                        const std::string& name);

inline constexpr size_t kMaxDiffLines = 4000;
inline constexpr size_t kMaxDiffCells = 1 << 20;  // n * m: at most 4 MiB of table

}  // namespace qtls::admin
