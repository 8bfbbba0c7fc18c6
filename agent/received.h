// The Received line qmail-smtpd writes as the first line of each message (spec 4.8).
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace qtls::agent {

// `helo` is shown only when non-empty and different (case-insensitively) from remotehost.
// `protocol` is written raw: "SMTP", "ESMTPS (<cipher> encrypted)" or, after certificate
// relaying, "ESMTPS (<cipher> encrypted)\n  (cert <email>)".
std::string receivedLine(std::string_view remotehost, std::string_view helo,
                         std::string_view remoteip, std::string_view local,
                         std::string_view protocol, std::time_t when);

// "d Mon yyyy hh:mm:ss -0000" in UTC, as qmail's date822fmt.
std::string date822(std::time_t when);

}  // namespace qtls::agent
