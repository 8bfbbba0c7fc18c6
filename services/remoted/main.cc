// qtls-remoted: the outbound delivery daemon. Its parts (remoted_service.h) started, run and
// stopped by the daemon skeleton (daemon/skeleton.h); no logic of its own.
#include <memory>
#include <string>

#include "daemon/skeleton.h"
#include "remoted_flags.h"
#include "remoted_service.h"
#include "resolver.h"

using namespace qtls;
using namespace qtls::remoted;

int main(int argc, char** argv) {
  const RemotedFlags flags = parseRemotedFlags(argc, argv);
  RemotedState state(flags);
  daemon::Skeleton skeleton(flags.common, state.parts());
  if (auto s = skeleton.init(); !s.ok()) die(std::string(s.message()));
  auto resolver = AresResolver::create(flags.dns);
  if (!resolver.ok()) die(std::string(resolver.status().message()));
  auto service = std::make_unique<RemotedService>(skeleton.io(), state, std::move(*resolver));
  if (auto s = skeleton.run(std::move(service)); !s.ok()) die(std::string(s.message()));
  return 0;
}
