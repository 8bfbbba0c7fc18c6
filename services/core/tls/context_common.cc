// Shared SSL_CTX settings.
#include "tls/context_common.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <time.h>

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

long long earliestNotAfter(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return -1;
  long long best = -1;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) {
      long long t = static_cast<long long>(timegm(&tm));
      if (best < 0 || t < best) best = t;
    }
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(bio);
  return best;
}

}  // namespace qtls::tls
