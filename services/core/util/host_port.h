// The one parser of a listening address as the daemons' flags take it: "HOST:PORT",
// "[IPV6]:PORT" or ":PORT" (every address). The port is 0 to 65535 (0: any free one).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace qtls::text {

struct HostPort {
  std::string host;  // without brackets; "" = every address
  unsigned port = 0;
};

// `what` names the flag or listener in the error ("--admin-listen", "metrics listener").
absl::StatusOr<HostPort> parseHostPort(std::string_view s, std::string_view what);

}  // namespace qtls::text
