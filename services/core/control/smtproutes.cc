// smtproutes parsing and lookup, byte-compatible with qmail-remote's constmap use.
#include "control/smtproutes.h"

#include "util/text.h"

namespace qtls::control {

SmtpRoutes::SmtpRoutes(const std::vector<std::string>& lines) {
  for (const auto& line : lines) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    // Later lines replace earlier ones: the last duplicate wins.
    map_[text::lower(line.substr(0, colon))] = line.substr(colon + 1);
  }
}

absl::StatusOr<SmtpRoutes> SmtpRoutes::parse(const std::vector<std::string>& lines) {
  for (const auto& line : lines) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (line.find('|', colon) != std::string::npos)  // the credentials are never echoed
      return absl::InvalidArgumentError(
          text::cat("smtproutes: the route for \"", line.substr(0, colon),
                    "\" carries SMTP AUTH credentials (relay:port|user|password, from a qmail AUTH "
                    "patch); qtls does not do SMTP AUTH: remove the credentials or the line"));
  }
  return SmtpRoutes(lines);
}

std::optional<Route> SmtpRoutes::lookup(const std::string& host) const {
  const std::string h = text::lower(host);
  const std::string* value = nullptr;
  // Keys tried: h, then every suffix starting at a '.', then the empty key.
  for (size_t i = 0; i <= h.size() && value == nullptr; ++i) {
    if (i != 0 && i != h.size() && h[i] != '.') continue;
    auto it = map_.find(h.substr(i));
    if (it != map_.end()) value = &it->second;
  }
  if (value == nullptr || value->empty()) return std::nullopt;
  Route r;
  size_t colon = value->find(':');
  r.relay = value->substr(0, colon);
  if (colon != std::string::npos) {
    unsigned long port = 0;
    for (size_t i = colon + 1; i < value->size() && (*value)[i] >= '0' && (*value)[i] <= '9'; ++i)
      port = port * 10 + ((*value)[i] - '0');
    r.port = static_cast<unsigned>(port & 0xffff);
  }
  if (r.relay.empty()) return std::nullopt;
  return r;
}

}  // namespace qtls::control
