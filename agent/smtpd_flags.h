// qtls-smtpd's command line: the flags both daemons take (daemon/skeleton.h) and its own.
#pragma once

#include <string>
#include <vector>

#include "daemon/skeleton.h"
#include "listener.h"
#include "session.h"

namespace qtls::agent {

struct SmtpdFlags {
  daemon::CommonFlags common;
  std::string queue;                // qmail-queue to run; default <home>/bin/qmail-queue
  std::vector<ListenerSpec> specs;  // --listen, in order; empty = systemd's or port 25
  ConnectionLimits limits;
  SessionLimits sessionLimits;
};

// Parses argv; prints the usage or version and exits 0 for --help and --version, and exits 111
// naming the flag for a bad one.
SmtpdFlags parseSmtpdFlags(int argc, char** argv);

[[noreturn]] void die(const std::string& msg);  // "qtls-smtpd: fatal: ...", exit 111

}  // namespace qtls::agent
