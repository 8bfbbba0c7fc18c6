// qmail control-file reading: three states (value, absent, error) and qmail's line rules.
#include "control/control_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "util/text.h"

namespace qtls::control {
namespace {

std::string_view stripTrailing(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

absl::StatusOr<std::optional<std::string>> readFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    if (errno == ENOENT) return std::optional<std::string>();
    return absl::UnavailableError(text::cat("unable to read ", path, ": ", std::strerror(errno)));
  }
  std::string out;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed)
    return absl::UnavailableError(text::cat("unable to read ", path, ": ", std::strerror(err)));
  return std::optional<std::string>(std::move(out));
}

absl::StatusOr<std::optional<std::string>> readLine(const std::string& path) {
  auto content = readFile(path);
  if (!content.ok()) return content.status();
  if (!content->has_value()) return std::optional<std::string>();
  std::string_view s = **content;
  s = s.substr(0, s.find('\n'));
  return std::optional<std::string>(std::string(stripTrailing(s)));
}

absl::StatusOr<std::optional<std::vector<std::string>>> readList(const std::string& path) {
  auto content = readFile(path);
  if (!content.ok()) return content.status();
  if (!content->has_value()) return std::optional<std::vector<std::string>>();
  std::vector<std::string> lines;
  std::string_view s = **content;
  while (!s.empty()) {
    size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
    line = stripTrailing(line);
    if (line.empty() || line[0] == '#') continue;
    lines.emplace_back(line);
  }
  return std::optional<std::vector<std::string>>(std::move(lines));
}

absl::StatusOr<long> readInt(const std::string& path, long def) {
  auto line = readLine(path);
  if (!line.ok()) return line.status();
  if (!line->has_value()) return def;
  const std::string& s = **line;
  if (s.empty() || s[0] < '0' || s[0] > '9') return def;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') break;
    if (v > 100000000) break;  // far beyond any sane timeout; stop before overflow
    v = v * 10 + (c - '0');
  }
  return v;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace qtls::control
