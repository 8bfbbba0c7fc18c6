// qtls-remoted's command line: the flags both daemons take (daemon/skeleton.h) and its own.
#pragma once

#include <sys/types.h>

#include <asio/ip/address.hpp>
#include <set>
#include <string>
#include <vector>

#include "conn_flags.h"
#include "daemon/skeleton.h"
#include "resolver.h"

namespace qtls::remoted {

struct RemotedFlags {
  daemon::CommonFlags common;
  std::string socketPath = "/run/qtls/remoted.sock";
  std::set<uid_t> allowed;  // uids that may deliver through the shim socket
  std::vector<asio::ip::address> ipmeExclude;
  AresResolver::Options dns;
  unsigned mxPort = 25;
  int maxDeliveries = 1000;
  long deliveryLimit = 3600;
  ConnFlags conn;
};

// Parses argv; prints the usage or version and exits 0 for --help and --version, and exits 111
// naming the flag for a bad one.
RemotedFlags parseRemotedFlags(int argc, char** argv);

[[noreturn]] void die(const std::string& msg);  // "qtls-remoted: fatal: ...", exit 111

}  // namespace qtls::remoted
