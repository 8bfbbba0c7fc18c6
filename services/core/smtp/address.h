// Envelope address rewriting for MAIL FROM / RCPT TO, as qmail-remote does it: split at the
// last '@' and RFC 821-quote the local part only when it needs quoting.
#pragma once

#include <string>
#include <string_view>

namespace qtls::smtp {

std::string quoteAddress(std::string_view address);

}  // namespace qtls::smtp
