// Shared SSL_CTX settings.
#include "tls/context_common.h"

#include <openssl/err.h>

#include "util/text.h"

namespace qtls::tls {

int acceptForLaterCheck(int, X509_STORE_CTX*) { return 1; }

absl::Status setCipherString(SSL_CTX* ctx, const std::string& ciphers, std::string_view source) {
  if (ciphers.empty()) return absl::OkStatus();
  ERR_clear_error();
  bool ok12 = SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) == 1;
  bool ok13 = SSL_CTX_set_ciphersuites(ctx, ciphers.c_str()) == 1;
  ERR_clear_error();
  if (!ok12 && !ok13)
    return absl::InvalidArgumentError(
        text::cat(source, ": no cipher in \"", ciphers, "\" is known"));
  return absl::OkStatus();
}

}  // namespace qtls::tls
