// OpenSSL error-queue helpers: every message names what failed and why.
#pragma once

#include <string>

namespace qtls::tls {

// Drains the OpenSSL error queue and returns the text of its last entry in OpenSSL's
// "error:XXXXXXXX:lib::reason" form (what the TLS patch prints), or "" if the queue was empty.
std::string drainErrors();

// The text for one packed OpenSSL error code.
std::string errorString(unsigned long code);

}  // namespace qtls::tls
