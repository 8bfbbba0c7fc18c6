// Shared CLI helpers.
#include "cli.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"

namespace qtls::ctl {

int exitForCode(int canonicalCode) {
  switch (static_cast<absl::StatusCode>(canonicalCode)) {
    case absl::StatusCode::kOk:
      return kOk;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kUnreachable;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return kInvalid;
    case absl::StatusCode::kAborted:
      return kConflict;
    case absl::StatusCode::kFailedPrecondition:
      return kRefused;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kDenied;
    default:
      return kOther;
  }
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "qtlsctl: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(kUsage);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double duration(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  double n = std::strtod(v.c_str(), &end);
  const std::string unit = end ? end : "";
  if (end == v.c_str() || n < 0) usage(flag + ": not a duration: " + v);
  if (unit == "" || unit == "s") return n;
  if (unit == "m") return n * 60;
  if (unit == "h") return n * 3600;
  usage(flag + ": not a duration (30s, 5m, 1h): " + v);
}

}  // namespace qtls::ctl
