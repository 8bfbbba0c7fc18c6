// What qtlsctl's parts share: exit codes, the usage exit and reading a local file.
#pragma once

#include <string>

namespace qtls::ctl {

// Exit codes (docs/admin-api.md).
enum Exit {
  kOk = 0,
  kNotServing = 1,
  kUsage = 2,
  kUnreachable = 3,
  kInvalid = 4,
  kConflict = 5,
  kDenied = 6,
  kOther = 7,
};

// Prints the message and the usage text, exits kUsage.
[[noreturn]] void usage(const std::string& msg);
// A local file's bytes; exits kUsage (naming the file) when it cannot be read.
std::string readFile(const std::string& path);

}  // namespace qtls::ctl
