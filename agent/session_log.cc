// The session's log line and its record for metrics and the session stream.
#include <openssl/x509.h>

#include <chrono>

#include "candidate.h"
#include "log/log.h"
#include "session_impl.h"
#include "tls/ssl_ptr.h"
#include "util/text.h"

namespace qtls::agent {

void Session::logSession(std::string_view end) {
  std::string tlsDesc = "-/-", certDesc = "-", verify = "-";
  admin::SessionEvent e;
  if (stream_.tls()) {
    SSL* ssl = stream_.ssl();
    e.tlsVersion = SSL_get_version(ssl);
    e.cipher = SSL_get_cipher_name(ssl);
    e.resumed = SSL_session_reused(ssl) == 1;
    tlsDesc = text::cat(SSL_get_version(ssl), "/", SSL_get_cipher_name(ssl));
    tls::X509Ptr peer(SSL_get1_peer_certificate(ssl));
    if (peer) {
      char buf[512];
      X509_NAME_oneline(X509_get_subject_name(peer.get()), buf, sizeof buf);
      certDesc = buf;
      long v = SSL_get_verify_result(ssl);
      verify = v == X509_V_OK ? "ok" : text::cat("fail:", X509_verify_cert_error_string(v));
    } else {
      verify = "none";
    }
  }
  const char* mode = p_.implicitTls ? "implicit" : stream_.tls() ? "starttls" : "plain";
  const bool up = stream_.tls() && SSL_is_init_finished(stream_.ssl());
  std::string candidate;  // " candidate=<verdict>" when one is evaluated
  if (p_.candidate) {
    InboundSeen seen;
    seen.tlsTried = stream_.tls();
    seen.tlsUp = up;
    seen.implicit = p_.implicitTls;
    seen.relayedByCert = cert_.allowed;
    if (up) seen.client = tls::PeerChain::of(stream_.ssl());
    const fleet::Verdict v = judgeCandidate(*p_.candidate, p_.listenerCiphers, seen);
    candidate = text::cat(" candidate=", fleet::verdictName(v));
    if (p_.metrics) p_.metrics->config.judged(v);
    e.candidateDigest = p_.candidate->digest;
    e.candidateVerdict = std::string(fleet::verdictName(v));
  }
  log::info(text::cat("session client=", remoteIp_, " listener=", p_.listener, " tls=", tlsDesc,
                      " cert=", log::value(certDesc), " verify=", log::value(verify), " relay=",
                      relayUsed_, " relay_refused=", refusedRelay_, " accepted=", accepted_,
                      " injected_bytes=", injected_, candidate, " end=", end));
  if (stream_.tls() && !up) {
    e.failureReason = "handshake";
    e.tlsVersion = e.cipher = "-";
  }
  if (up && p_.metrics)
    p_.metrics->tlsSessions.with({mode, e.tlsVersion, e.cipher, e.resumed ? "yes" : "no"}).add(1);
  if (p_.events == nullptr) return;
  e.endTime = admin::unixNow();
  e.direction = "inbound";
  e.peer = remoteIp_;
  e.domain = helo_;
  e.levelRequested = "-";
  e.levelAchieved = up ? (verify == "ok" ? "verify" : "encrypt") : "none";
  e.policySource = "relay:" + relayUsed_;
  e.verify = verify;
  e.outcome = std::string(end);
  e.tlsMode = mode;
  e.messages = static_cast<uint32_t>(accepted_);
  e.durationSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  e.policyGeneration = cfg_.generation;
  e.policyDigest = cfg_.digest;
  p_.events->publish(e);
}

}  // namespace qtls::agent
