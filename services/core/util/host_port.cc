// Parsing a listening address (host_port.h).
#include "util/host_port.h"

#include "util/text.h"

namespace qtls::text {

absl::StatusOr<HostPort> parseHostPort(std::string_view s, std::string_view what) {
  const size_t colon = s.rfind(':');
  const std::string_view port = colon == std::string_view::npos ? "" : s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return absl::InvalidArgumentError(cat(what, " ", s, ": want HOST:PORT"));
  HostPort out;
  out.port = static_cast<unsigned>(std::stoul(std::string(port)));
  if (out.port > 65535) return absl::InvalidArgumentError(cat(what, " ", s, ": no such port"));
  std::string_view host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  out.host = std::string(host);
  return out;
}

}  // namespace qtls::text
