// The admin-API flags both daemons take, parsed in one place.
#pragma once

#include <string>

#include "admin/server.h"
#include "log/log.h"
#include "util/flags.h"
#include "util/text.h"

namespace qtls::admin {

struct AdminFlags {
  AdminOptions options;
  std::string stateDir;
};

inline constexpr char kAdminUsage[] =
    "  --state-dir DIR         policy generations and audit log (default /var/lib/qtls/<daemon>)\n"
    "  --admin-listen ADDR     admin gRPC: unix:/path or host:port (mTLS only); repeatable;\n"
    "                          default unix:/run/qtls/remoted-admin.sock (qtls-remoted),\n"
    "                          unix:/run/qtls-smtpd/admin.sock (qtls-smtpd); none = off\n"
    "  --admin-group GROUP     group of the admin Unix socket (mode 0660)\n"
    "  --admin-cert FILE       TCP admin: server certificate chain (PEM)\n"
    "  --admin-key FILE        TCP admin: server private key (PEM)\n"
    "  --admin-client-ca FILE  TCP admin: CA that issues admin client certificates\n"
    "  --admin-clients FILE    TCP admin: \"<identity> read|write\" per line\n";

// Consumes the current flag if it is an admin flag.
inline bool readAdminFlag(FlagReader& f, AdminFlags& a) {
  const std::string& n = f.name();
  if (n == "--state-dir")
    a.stateDir = f.value();
  else if (n == "--admin-listen")
    a.options.listen.push_back(f.value());
  else if (n == "--admin-group")
    a.options.socketGroup = f.value();
  else if (n == "--admin-cert")
    a.options.certFile = f.value();
  else if (n == "--admin-key")
    a.options.keyFile = f.value();
  else if (n == "--admin-client-ca")
    a.options.clientCaFile = f.value();
  else if (n == "--admin-clients")
    a.options.clientsFile = f.value();
  else
    return false;
  return true;
}

// Fills the defaults for `daemon` ("remoted", "smtpd"); "none" turns the admin API off.
inline void adminDefaults(AdminFlags& a, const std::string& daemon) {
  if (a.stateDir.empty()) a.stateDir = "/var/lib/qtls/" + daemon;
  // Each daemon's socket in a directory of its own: the units run as different users, and
  // systemd gives a RuntimeDirectory= to its unit's user at every start and reload.
  if (a.options.listen.empty())
    a.options.listen.push_back(daemon == "remoted" ? "unix:/run/qtls/remoted-admin.sock"
                                                   : "unix:/run/qtls-" + daemon + "/admin.sock");
  if (a.options.listen.size() == 1 && a.options.listen[0] == "none") a.options.listen.clear();
}

// Starts `server` on the listeners in `a` (none when the list is empty), logging each one.
inline absl::Status startAdmin(AdminServer& server, const AdminFlags& a) {
  if (a.options.listen.empty()) return absl::OkStatus();
  auto where = server.start(a.options);
  if (!where.ok()) return where.status();
  for (const auto& w : *where) log::info(text::cat("admin listen=", w));
  return absl::OkStatus();
}

}  // namespace qtls::admin
