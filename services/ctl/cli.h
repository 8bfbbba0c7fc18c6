// What qtlsctl's parts share: exit codes, the usage exit and reading a local file.
#pragma once

#include <string>
#include <vector>

namespace qtls::ctl {

// Exit codes (docs/admin-api.md).
enum Exit {
  kOk = 0,
  kNotServing = 1,
  kUsage = 2,
  kUnreachable = 3,
  kInvalid = 4,
  kConflict = 5,  // compare-and-swap lost: read the policy again and retry
  kDenied = 6,
  kOther = 7,
  kRefused = 8,         // the daemon cannot take a change now (hand edit pending, cannot write)
  kRolloutStopped = 9,  // a rollout ended other than done: paused, rolled back, aborted
  // `rollout status`: the state of the rollout (0 when it is done).
  kRolloutRunning = 10,  // report-only, rolling or soaking: a controller is driving it
  kRolloutPaused = 11,   // a person must resume, promote or abort it
  kRolloutRolledBack = 12,
  kRolloutAborted = 13,
};

// The exit code for a canonical status code (gRPC's and absl's codes are the same numbers):
// the one table, for a daemon's answer and for etcd's alike (docs/admin-api.md, "qtlsctl").
int exitForCode(int canonicalCode);

// Prints the message and the usage text, exits kUsage.
[[noreturn]] void usage(const std::string& msg);

// A command's arguments after its name, consumed in order.
struct Args {
  std::vector<std::string> v;
  size_t i = 0;
  bool more() const { return i < v.size(); }
  std::string next(const std::string& flag) {
    if (i >= v.size()) usage(flag + " needs a value");
    return v[i++];
  }
};
// A flag's value as seconds: "30", "30s", "5m", "1h"; a usage error otherwise.
double duration(const std::string& flag, const std::string& v);
// A local file's bytes; exits kUsage (naming the file) when it cannot be read.
std::string readFile(const std::string& path);

}  // namespace qtls::ctl
