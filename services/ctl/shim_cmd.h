// qtlsctl shim install|uninstall (shim_cmd.cc).
#pragma once

#include "cli.h"

namespace qtls::ctl {

// Puts qtls-remote in place of qmail's bin/qmail-remote (and, with --rspawn, qtls-rspawn in
// place of bin/qmail-rspawn), keeping the originals; uninstall puts them back. Idempotent.
int shimCommand(Args& a);

}  // namespace qtls::ctl
