// OpenSSL error text.
#include "tls/errors.h"

#include <openssl/err.h>

namespace qtls::tls {

std::string errorString(unsigned long code) {
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

std::string drainErrors() {
  unsigned long last = 0, e;
  while ((e = ERR_get_error()) != 0) last = e;
  return last == 0 ? std::string() : errorString(last);
}

}  // namespace qtls::tls
