// control/smtproutes: artificial routes, with qmail's key lookup order (host, each ".suffix"
// longest first, then the empty catch-all key) and "last duplicate wins".
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace qtls::control {

struct Route {
  std::string relay;  // name, "a.b.c.d" or "[a.b.c.d]"; never empty
  unsigned port = 25;
};

class SmtpRoutes {
 public:
  SmtpRoutes() = default;
  // Lines of the file as readList() returns them; lines without ':' are ignored.
  explicit SmtpRoutes(const std::vector<std::string>& lines);
  // The same, refusing what qtls cannot honour: a route carrying SMTP AUTH credentials
  // (`domain:relay:port|user|password`, from some qmail patches) would otherwise be taken as
  // a port and the mail sent without the authentication the relay expects.
  static absl::StatusOr<SmtpRoutes> parse(const std::vector<std::string>& lines);

  // The route for `host`, or nullopt when no key matches or the matching entry has an empty
  // relay ("use MX as usual").
  std::optional<Route> lookup(const std::string& host) const;

  size_t size() const { return map_.size(); }

 private:
  std::unordered_map<std::string, std::string> map_;  // lowercased key -> value
};

}  // namespace qtls::control
