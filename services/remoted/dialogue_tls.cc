// The TLS part of the outbound dialogue: STARTTLS or implicit TLS, the handshake, and the
// peer checks a level requires (spec 3.3-3.7; docs/policy.md for fingerprint).
#include <openssl/err.h>
#include <openssl/x509.h>

#include <asio/ssl/error.hpp>
#include <chrono>
#include <cstring>

#include "dialogue.h"
#include "log/log.h"
#include "peer_check.h"
#include "tls/errors.h"
#include "tls/session_cache.h"
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

}  // namespace

bool Dialogue::verifyPeer(const TlsPlan& plan) {
  // The chain kept by startTls(): the handshake verified it against the plan's trust.
  const PeerCheck c =
      checkPeer(plan, facts_.seen.chain.leaf(), SSL_get_verify_result(conn_->ssl()), facts_.ip);
  facts_.verify = c.verify;
  if (!c.ok) {
    EndingContext e = context();
    e.arg = c.arg;
    e.err = c.err;
    e.detail = c.detail;
    e.n = c.line;
    end(c.failure, e);
  }
  facts_.seen.verified = c.ok && c.verify != "none";
  return c.ok;
}

// Returns false when the report is final. tlsDone tells whether TLS is now active.
asio::awaitable<bool> Dialogue::startTls(const Target& t, const TlsPlan& plan, bool implicit,
                                         bool& tlsDone) {
  tlsDone = false;
  const bool required = implicit || policy::tlsRequired(plan.decision.level);
  if (plan.decision.level == TlsLevel::kNone && !implicit) co_return true;

  const auto& ctx = plan.context;
  if (!ctx.ok()) {
    if (!required) co_return true;
    const std::string err(ctx.status().message());
    EndingContext c = context();
    c.arg = plan.caLabel;
    c.err = err;
    end(ctx.status().code() == absl::StatusCode::kFailedPrecondition ? Failure::kCaUnusable
                                                                     : Failure::kTlsInitCtx,
        c);
    co_return false;
  }
  ERR_clear_error();
  tls::SslPtr ssl(SSL_new(ctx->get()));
  if (!ssl) {
    if (!required) co_return true;
    const std::string err = tls::drainErrors();
    EndingContext c = context();
    c.err = err;
    end(Failure::kTlsInitSsl, c);
    co_return false;
  }
  // SNI with the MX name (qmail-tls sent none); never for IP targets.
  if (!t.fqdn.empty()) SSL_set_tlsext_host_name(ssl.get(), t.fqdn.c_str());
  // Resumption: a session this server gave a connection with the same key, used once; the
  // sessions it gives this one are kept under the key.
  bool offered = false;
  if (deps_.sessions) {
    conn_->sslBinding = deps_.sessions->bind(ssl.get(), key_);
    if (auto session = deps_.sessions->take(key_))
      offered = SSL_set_session(ssl.get(), session.get()) == 1;
  }

  if (!implicit) {
    SmtpConn::ReadResult rr;
    // Bytes after the 220 are discarded by handshake() (reply injection), not refused here.
    if (!co_await command("STARTTLS\r\n", rr, true)) co_return false;
    if (rr.reply.code != 220) {
      facts_.seen.starttlsRefused = true;
      if (!required) co_return true;  // plain text, with the first EHLO's answer
      EndingContext c = context(&rr.reply);
      c.arg = plan.sentence;
      end(Failure::kStarttlsRejected, c);
      co_return false;
    }
  }
  size_t discarded = 0;
  facts_.seen.tlsTried = true;
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
    log::warn(text::cat("remote relay=", facts_.relay, " sent ", discarded,
                        " bytes before the TLS handshake; discarded (reply injection)"));
  if (ec) {
    count(false);
    if (control_.stopped()) {
      died();
      co_return false;
    }
    const std::string err = sslErrorText(ec, conn_->timedOut());
    EndingContext c = context();
    c.err = err;
    end(Failure::kTlsHandshake, c);
    co_return false;
  }
  facts_.tlsVersion = SSL_get_version(conn_->ssl());
  facts_.cipher = SSL_get_cipher_name(conn_->ssl());
  facts_.resumed = SSL_session_reused(conn_->ssl()) == 1;
  if (metrics_)
    metrics_->tlsResumptions.with({facts_.resumed ? "resumed"
                                   : offered      ? "refused"
                                                  : "full"})
        .add(1);
  facts_.seen.tlsUp = true;
  facts_.seen.chain = tls::PeerChain::of(conn_->ssl());
  // What the session has, not what was asked: encrypted, and verified only once checked.
  facts_.levelAchieved = "encrypt";
  const bool checked = verifyPeer(plan);
  count(checked);
  if (!checked) co_return false;
  if (plan.decision.level >= TlsLevel::kVerify)
    facts_.levelAchieved = std::string(policy::levelName(plan.decision.level));
  tlsDone = true;
  co_return true;
}

}  // namespace qtls::remoted
