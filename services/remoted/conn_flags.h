// qtls-remoted's connection options (docs/operations.md, "Connection reuse"), parsed in one
// place.
#pragma once

#include <string>

#include "conn_cache.h"
#include "conn_limits.h"
#include "util/flags.h"

namespace qtls::remoted {

struct ConnFlags {
  ConnCache::Options cache;
  ConnLimits::Options limits;
  bool pipelining = true, quickAck = true, resumption = true, tcpto = true;
};

inline constexpr char kConnUsage[] =
    "  --connection-idle N     seconds a connection stays open for the next delivery to the\n"
    "                          same server (default 2; 0: no reuse)\n"
    "  --connection-lifetime N seconds after which a connection is not reused (default 300)\n"
    "  --max-connections N     connections in use at once, in all (default 500)\n"
    "  --max-connections-per-host N  to one server address (default 20)\n"
    "  --connection-wait N     seconds a delivery over a cap waits for a slot, then Z\n"
    "                          (default 60)\n"
    "  --no-pipelining         never pipeline MAIL, RCPT and DATA\n"
    "  --no-tls-resumption     always a full TLS handshake\n"
    "  --no-tcpto              try addresses whose connects timed out, too\n"
    "  --no-quickack           leave TCP delayed ACKs on (for measurements)\n";

inline bool readConnFlag(FlagReader& f, ConnFlags& c) {
  const std::string& n = f.name();
  if (n == "--connection-idle")
    c.cache.idle = std::chrono::seconds(f.number(0, 3600));
  else if (n == "--connection-lifetime")
    c.cache.lifetime = std::chrono::seconds(f.number(1, 86400));
  else if (n == "--max-connections")
    c.limits.total = static_cast<size_t>(f.number(1, 1000000));
  else if (n == "--max-connections-per-host")
    c.limits.perAddress = static_cast<size_t>(f.number(1, 1000000));
  else if (n == "--connection-wait")
    c.limits.wait = std::chrono::seconds(f.number(0, 86400));
  else if (n == "--no-pipelining")
    c.pipelining = false;
  else if (n == "--no-tls-resumption")
    c.resumption = false;
  else if (n == "--no-tcpto")
    c.tcpto = false;
  else if (n == "--no-quickack")
    c.quickAck = false;
  else
    return false;
  c.cache.maxIdlePerAddress = c.limits.perAddress;
  return true;
}

}  // namespace qtls::remoted
