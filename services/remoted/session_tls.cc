// The TLS part of the outbound dialogue: STARTTLS or implicit TLS, the handshake, and the
// peer checks a level requires (spec 3.3-3.7; docs/policy.md for fingerprint).
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <asio/ssl/error.hpp>
#include <chrono>
#include <cstring>

#include "log/log.h"
#include "session.h"
#include "tls/errors.h"
#include "tls/name_match.h"
#include "util/text.h"

namespace qtls::remoted {
namespace {

using policy::TlsLevel;

std::string sslErrorText(const std::error_code& ec, bool timedOut) {
  if (timedOut) return std::strerror(ETIMEDOUT);
  std::string queued = tls::drainErrors();
  if (ec.category() == asio::error::get_ssl_category() && ec.value() != 0)
    return tls::errorString(static_cast<unsigned long>(ec.value()));
  if (!queued.empty()) return queued;
  if (ec == asio::ssl::error::stream_truncated) return "unexpected end of file";
  if (ec == asio::error::eof) return "connection closed by the server";
  return ec.message();
}

// Pins are SHA-256 digests of the DER certificate or of the DER SubjectPublicKeyInfo (the
// form DANE and HPKP use; X509_pubkey_digest would hash only the key bits).
bool pinMatches(X509* cert, const std::vector<policy::Pin>& pins) {
  unsigned char certDigest[EVP_MAX_MD_SIZE], spkiDigest[EVP_MAX_MD_SIZE];
  unsigned int n1 = 0, n2 = 0;
  if (X509_digest(cert, EVP_sha256(), certDigest, &n1) != 1) return false;
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return false;
  bool ok = EVP_Digest(der, static_cast<size_t>(len), spkiDigest, &n2, EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok) return false;
  for (const auto& p : pins) {
    const unsigned char* d = p.kind == policy::Pin::Kind::kCert ? certDigest : spkiDigest;
    if (std::memcmp(d, p.sha256.data(), 32) == 0) return true;
  }
  return false;
}

}  // namespace

bool Session::verifyPeer(const TlsPlan& plan) {
  SSL* ssl = conn_->ssl();
  TlsLevel level = plan.decision.level;
  if (level != TlsLevel::kVerify && level != TlsLevel::kFingerprint) {
    verify_ = "none";
    return true;
  }
  if (level == TlsLevel::kVerify) {
    long r = SSL_get_verify_result(ssl);
    if (r != X509_V_OK) {
      verify_ = "fail";
      tlsFail(r == X509_V_ERR_CERT_HAS_EXPIRED ? "expired" : "untrusted",
              text::cat("TLS unable to verify server with ", plan.caLabel),
              X509_verify_cert_error_string(r), true);
      return false;
    }
  }
  const std::string who = plan.names.empty() ? ip_ : plan.names.front();
  tls::X509Ptr peer(SSL_get1_peer_certificate(ssl));
  if (!peer) {
    verify_ = "fail";
    tlsFail("no_certificate", text::cat("TLS unable to verify server ", who),
            "no certificate provided", true);
    return false;
  }
  if (level == TlsLevel::kFingerprint) {
    if (!pinMatches(peer.get(), plan.entry->pins)) {
      verify_ = "fail";
      tlsFail("pin_mismatch", text::cat("TLS unable to verify server ", who),
              text::cat("certificate matches no fingerprint of control/tlspolicy line ",
                        plan.entry->line),
              true);
      return false;
    }
    verify_ = "pinned";
    return true;
  }
  if (plan.names.empty()) {
    verify_ = "fail";
    tlsFail("name_mismatch", text::cat("TLS unable to verify server ", ip_),
            "no host name to check", true);
    return false;
  }
  tls::NameResult first;
  for (size_t i = 0; i < plan.names.size(); ++i) {
    tls::NameResult nr = tls::checkCertificateName(peer.get(), plan.names[i]);
    if (nr.result == tls::NameCheck::kMatch) {
      verify_ = "ok";
      return true;
    }
    if (i == 0) first = nr;
  }
  verify_ = "fail";
  std::string what = text::cat("TLS unable to verify server ", who);
  switch (first.result) {
    case tls::NameCheck::kNoCommonName:
      tlsFail("name_mismatch", what, "certificate contains no valid commonName", true);
      break;
    case tls::NameCheck::kCnMismatch:
      tlsFail("name_mismatch", what, text::cat("received certificate for ", printable(first.cn)),
              true);
      break;
    default:
      tlsFail("name_mismatch", what, "certificate contains no matching dNSNnames",
              true);  // (sic), as qmail-tls
      break;
  }
  return false;
}

// Returns false when the report is final. tlsDone tells whether TLS is now active.
asio::awaitable<bool> Session::startTls(const Target& t, const TlsPlan& plan, bool implicit,
                                        bool& tlsDone) {
  tlsDone = false;
  const bool required = implicit || policy::tlsRequired(plan.decision.level);
  if (plan.decision.level == TlsLevel::kNone && !implicit) co_return true;

  const auto& ctx = plan.context;
  if (!ctx.ok()) {
    if (!required) co_return true;
    if (ctx.status().code() == absl::StatusCode::kFailedPrecondition)
      tlsFail("ca_unusable", text::cat("TLS unable to load ", plan.caLabel),
              std::string(ctx.status().message()), false);
    else
      tlsFail("internal", "TLS error initializing ctx", std::string(ctx.status().message()), false);
    co_return false;
  }
  ERR_clear_error();
  tls::SslPtr ssl(SSL_new(ctx->get()));
  if (!ssl) {
    if (!required) co_return true;
    tlsFail("internal", "TLS error initializing ssl", tls::drainErrors(), false);
    co_return false;
  }
  // SNI with the MX name (qmail-tls sent none); never for IP targets.
  if (!t.fqdn.empty()) SSL_set_tlsext_host_name(ssl.get(), t.fqdn.c_str());

  if (!implicit) {
    SmtpConn::ReadResult rr;
    // Bytes after the 220 are discarded by handshake() (reply injection), not refused here.
    if (!co_await command("STARTTLS\r\n", rr, true)) co_return false;
    if (rr.reply.code != 220) {
      if (!required) co_return true;  // plain text, with the first EHLO's answer
      tlsFail("starttls_rejected", text::cat("STARTTLS rejected while ", plan.sentence), "", false,
              remoteSaid(rr.reply));
      co_return false;
    }
  }
  size_t discarded = 0;
  const auto handshakeStart = std::chrono::steady_clock::now();
  std::error_code ec = co_await conn_->handshake(std::move(ssl), discarded);
  if (metrics_)
    metrics_->handshakeSeconds().observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - handshakeStart).count());
  // A handshake counts as ok only once the peer passed the checks its level asks for: a
  // certificate or name mismatch is a failed handshake for alerting, not "ok".
  auto count = [&](bool ok) {
    if (metrics_)
      metrics_->handshakes
          .with({std::string(policy::levelName(plan.decision.level)), ok ? "ok" : "failed",
                 ok ? SSL_get_version(conn_->ssl()) : "none"})
          .add(1);
  };
  if (discarded > 0)
    log::warn(text::cat("remote relay=", relay_, " sent ", discarded,
                        " bytes before the TLS handshake; discarded (reply injection)"));
  if (ec) {
    count(false);
    polite_ = false;
    if (control_.stopped()) {
      died();
      co_return false;
    }
    tlsFail("handshake", "TLS connect failed", sslErrorText(ec, conn_->timedOut()), true);
    co_return false;
  }
  tlsVersion_ = SSL_get_version(conn_->ssl());
  cipher_ = SSL_get_cipher_name(conn_->ssl());
  resumed_ = SSL_session_reused(conn_->ssl()) == 1;
  // What the session has, not what was asked: encrypted, and verified only once checked.
  levelAchieved_ = "encrypt";
  const bool checked = verifyPeer(plan);
  count(checked);
  if (!checked) co_return false;
  if (plan.decision.level >= TlsLevel::kVerify)
    levelAchieved_ = std::string(policy::levelName(plan.decision.level));
  tlsDone = true;
  co_return true;
}

}  // namespace qtls::remoted
