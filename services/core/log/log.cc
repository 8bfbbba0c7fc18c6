// Log line output.
#include "log/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace qtls::log {
namespace {
std::atomic<int> minSeverity{static_cast<int>(Severity::kInfo)};

const char* word(Severity s) {
  switch (s) {
    case Severity::kDebug:
      return "debug";
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
    case Severity::kFatal:
      return "fatal";
  }
  return "info";
}
}  // namespace

void setMinSeverity(Severity s) { minSeverity = static_cast<int>(s); }

void write(Severity s, std::string_view line) {
  if (static_cast<int>(s) < minSeverity) return;
  std::string out = word(s);
  out += ": ";
  for (char c : line) out.push_back(c == '\n' ? ' ' : c);
  out.push_back('\n');
  // One write per line so that lines from several threads never interleave.
  (void)!::write(2, out.data(), out.size());
}

std::string value(std::string_view v) {
  std::string out;
  bool quote = v.empty();
  static const char hex[] = "0123456789abcdef";
  for (unsigned char c : v) {
    if (c == ' ') {
      quote = true;
      out.push_back(' ');
    } else if (c < 33 || c > 126) {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return quote ? "\"" + out + "\"" : out;
}

}  // namespace qtls::log
