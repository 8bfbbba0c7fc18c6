// Pieces shared by the client and server SSL_CTX builders.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace qtls::tls {

// A verification callback that lets the handshake finish whatever the result; callers read
// SSL_get_verify_result afterwards, so that each failure gets its own report or reply.
int acceptForLaterCheck(int preverifyOk, X509_STORE_CTX* ctx);

// Applies one qmail-style cipher string to both the TLS <= 1.2 cipher list and the TLS 1.3
// suites, as qmail-tls does; unlike qmail-tls, a string valid for neither is an error naming
// `source`. An empty string leaves OpenSSL's defaults.
absl::Status setCipherString(SSL_CTX* ctx, const std::string& ciphers, std::string_view source);

// The earliest notAfter (Unix time) of the PEM certificates in `pem`, or -1 when there are
// none: for the certificate-expiry gauges.
long long earliestNotAfter(std::string_view pem);

}  // namespace qtls::tls
