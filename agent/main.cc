// qtls-smtpd: the inbound SMTP agent. Its parts (smtpd_service.h) started, run and stopped by
// the daemon skeleton (daemon/skeleton.h); no logic of its own.
#include <memory>
#include <string>

#include "daemon/privileges.h"
#include "daemon/skeleton.h"
#include "smtpd_flags.h"
#include "smtpd_service.h"

using namespace qtls;
using namespace qtls::agent;

int main(int argc, char** argv) {
  const SmtpdFlags flags = parseSmtpdFlags(argc, argv);
  const int max = flags.limits.maxConnections;
  if (auto s = daemon::raiseFileLimit(3 * static_cast<rlim_t>(max) + 64,
                                      "--max-connections " + std::to_string(max));
      !s.ok())
    die(std::string(s.message()));
  SmtpdState state(flags);
  daemon::Skeleton skeleton(flags.common, state.parts());
  if (auto s = skeleton.init(); !s.ok()) die(std::string(s.message()));
  auto service = std::make_unique<SmtpdService>(skeleton.io(), state);
  if (auto s = skeleton.run(std::move(service)); !s.ok()) die(std::string(s.message()));
  return 0;
}
