// Shared CLI helpers.
#include "cli.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace qtls::ctl {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "qtlsctl: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(kUsage);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace qtls::ctl
