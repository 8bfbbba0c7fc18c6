// The outbound SMTP dialogue (spec 2.6-2.10) with qmail-tls semantics (spec 3).
#include "delivery.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <asio/ssl/error.hpp>
#include <chrono>
#include <cstring>

#include "log/log.h"
#include "policy/resolve.h"
#include "smtp/address.h"
#include "smtp/body.h"
#include "tls/errors.h"
#include "tls/name_match.h"
#include "util/text.h"

namespace qtls::remoted {
namespace {

using policy::TlsLevel;

}  // namespace

TlsPlan makePlan(const RemoteConfig& cfg, const std::string& domain, const Target& t) {
  TlsPlan p;
  policy::Inputs in = policy::gatherFiles(cfg.controlDir, t.fqdn);
  in.table = cfg.tlspolicy.lookup(domain);
  p.decision = policy::decide(in);
  p.entry = in.table;
  p.spec.ciphers = cfg.ciphers;
  p.spec.clientCertFile = cfg.clientCert;
  if (!t.fqdn.empty()) p.names.push_back(t.fqdn);
  if (p.decision.source == policy::Source::kTlshostsPem) {
    p.caLabel = text::cat("control/tlshosts/", t.fqdn, ".pem");
    p.sentence = text::cat(p.caLabel, " exists");
    p.spec.caFile = text::cat(cfg.controlDir, "/tlshosts/", t.fqdn, ".pem");
  } else if (p.entry != nullptr) {
    p.sentence = text::cat("control/tlspolicy line ", p.entry->line, " requires ",
                           policy::levelName(p.entry->level));
    p.spec.minVersion = p.entry->minVersion;
    if (p.entry->level == TlsLevel::kVerify) {
      if (!p.entry->ca.empty()) {
        p.spec.caFile = p.entry->ca;
        p.caLabel = p.entry->ca;
      } else {
        p.spec.systemCa = true;
        p.caLabel = "the system CA store";
      }
      if (!p.entry->match.empty()) p.names = p.entry->match;
    }
  }
  return p;
}

namespace {

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

class Session {
 public:
  Session(const DeliveryDeps& deps, const DeliveryRequest& req, DeliveryResult& out)
      : cfg_(*deps.config), req_(req), out_(out), report_(out.report), metrics_(deps.metrics) {}

  asio::awaitable<void> run(const TargetList& targets);

  // Log fields.
  std::string relay_, levelRequested_ = "-", levelAchieved_ = "none", tlsVersion_ = "-",
                      cipher_ = "-", verify_ = "-", policySource_ = "-", failure_ = "none";
  bool resumed_ = false;

 private:
  asio::awaitable<bool> talk(const Target& t, unsigned port);
  asio::awaitable<bool> startTls(const Target& t, const TlsPlan& plan, bool implicit,
                                 bool& tlsDone);
  asio::awaitable<bool> command(std::string_view line, SmtpConn::ReadResult& rr,
                                bool extraAllowed = false);
  bool verifyPeer(const TlsPlan& plan);
  void died(const SmtpConn::ReadResult* rr = nullptr);
  void quit(char kind, std::string_view prepend, std::string_view append, const smtp::Reply* r) {
    report_.finish(kind, connectedText(prepend, ip_, append, r ? remoteSaid(*r) : std::string()));
  }
  // `reason`: a word from a closed set, for metrics and the session stream.
  void tlsFail(std::string_view reason, std::string_view what, std::string_view err, bool connected,
               const std::string& said = "") {
    failure_ = std::string(reason);
    report_.finish('Z', tlsText(what, err, connected, ip_, said));
  }

  const RemoteConfig& cfg_;
  const DeliveryRequest& req_;
  DeliveryResult& out_;
  Report& report_;
  RemoteMetrics* metrics_;
  std::shared_ptr<SmtpConn> conn_;
  std::string ip_;
  bool afterDot_ = false;
  bool polite_ = true;  // connection still in a state where QUIT makes sense
};

void Session::died(const SmtpConn::ReadResult* rr) {
  polite_ = false;
  if (rr != nullptr && !rr->ec && !rr->protocolError.empty()) {
    report_.finish(
        'Z', text::cat("Connected to ", ip_, " but the reply was malformed (", rr->protocolError,
                       "). ", afterDot_ ? "Possible duplicate! " : "", "(#4.4.2)\n"));
    return;
  }
  report_.finish('Z', diedText(ip_, afterDot_));
}

asio::awaitable<bool> Session::command(std::string_view line, SmtpConn::ReadResult& rr,
                                       bool extraAllowed) {
  if (auto ec = co_await conn_->write(line)) {
    died();
    co_return false;
  }
  rr = co_await conn_->readReply();
  if (rr.ok() && !extraAllowed && conn_->buffered() > 0)
    rr.protocolError = "more than one reply at once";  // e.g. an injected extra 250 to RCPT
  if (!rr.ok()) {
    died(&rr);
    co_return false;
  }
  co_return true;
}

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

  auto ctx = cfg_.contexts.get(plan.spec);
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
  if (metrics_) {
    metrics_->handshakeSeconds().observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - handshakeStart).count());
    metrics_->handshakes
        .with({std::string(policy::levelName(plan.decision.level)), ec ? "failed" : "ok",
               ec ? "none" : SSL_get_version(conn_->ssl())})
        .add(1);
  }
  if (discarded > 0)
    log::warn(text::cat("remote relay=", relay_, " sent ", discarded,
                        " bytes before the TLS handshake; discarded (reply injection)"));
  if (ec) {
    polite_ = false;
    tlsFail("handshake", "TLS connect failed", sslErrorText(ec, conn_->timedOut()), true);
    co_return false;
  }
  tlsVersion_ = SSL_get_version(conn_->ssl());
  cipher_ = SSL_get_cipher_name(conn_->ssl());
  resumed_ = SSL_session_reused(conn_->ssl()) == 1;
  if (!verifyPeer(plan)) co_return false;
  levelAchieved_ = plan.decision.level >= TlsLevel::kVerify
                       ? std::string(policy::levelName(plan.decision.level))
                       : "encrypt";
  tlsDone = true;
  co_return true;
}

asio::awaitable<bool> Session::talk(const Target& t, unsigned port) {
  SmtpConn::ReadResult rr;
  const bool implicit = port == 465;
  int code = 0;
  bool tlsDone = false;
  const TlsPlan plan = makePlan(cfg_, req_.host, t);
  levelRequested_ = std::string(policy::levelName(plan.decision.level));
  policySource_ = std::string(policy::sourceName(plan.decision.source));
  if (implicit) {
    if (!co_await startTls(t, plan, true, tlsDone)) co_return false;
    rr = co_await conn_->readReply();
    if (!rr.ok()) {
      died(&rr);
      co_return false;
    }
    if (rr.reply.code != 220) {
      quit('Z', "TLS Connected to ", " but greeting failed", &rr.reply);
      co_return false;
    }
  } else {
    rr = co_await conn_->readReply();
    if (!rr.ok()) {
      died(&rr);
      co_return false;
    }
    if (rr.reply.code != 220) {
      quit('Z', "Connected to ", " but greeting failed", &rr.reply);
      co_return false;
    }
    if (!co_await command(text::cat("EHLO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    code = rr.reply.code;
    std::vector<std::string> keywords;
    if (code == 250) keywords = smtp::ehloKeywords(rr.reply);
    // No STARTTLS keyword (or EHLO refused): a required level fails, the others go on in
    // plain text.
    if (!smtp::hasKeyword(keywords, "STARTTLS")) {
      if (policy::tlsRequired(plan.decision.level)) {
        tlsFail("no_starttls", text::cat("No TLS achieved while ", plan.sentence), "", false);
        co_return false;
      }
    } else if (!co_await startTls(t, plan, false, tlsDone)) {
      co_return false;
    }
  }
  if (implicit || tlsDone) {
    if (!co_await command(text::cat("EHLO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    code = rr.reply.code;
  }
  if (code != 250) {
    if (!co_await command(text::cat("HELO ", cfg_.helohost, "\r\n"), rr)) co_return false;
    if (rr.reply.code != 250) {
      quit('Z', "Connected to ", " but my name was rejected", &rr.reply);
      co_return false;
    }
  }

  if (!co_await command(text::cat("MAIL FROM:<", smtp::quoteAddress(req_.sender), ">\r\n"), rr))
    co_return false;
  if (rr.reply.code >= 500) {
    quit('D', "Connected to ", " but sender was rejected", &rr.reply);
    co_return false;
  }
  if (rr.reply.code >= 400) {
    quit('Z', "Connected to ", " but sender was rejected", &rr.reply);
    co_return false;
  }
  bool anyAccepted = false;
  for (const auto& r : req_.recipients) {
    if (!co_await command(text::cat("RCPT TO:<", smtp::quoteAddress(r), ">\r\n"), rr))
      co_return false;
    if (rr.reply.code >= 400) {
      report_.recipient(rr.reply.code >= 500 ? 'h' : 's',
                        text::cat(ip_, " does not like recipient.\n", remoteSaid(rr.reply)));
    } else {
      report_.recipient('r', "");
      anyAccepted = true;
    }
  }
  if (!anyAccepted) {
    quit('D', "Giving up on ", "", nullptr);
    co_return false;
  }
  if (!co_await command("DATA\r\n", rr)) co_return false;
  if (rr.reply.code >= 400) {
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "", " failed on DATA command", &rr.reply);
    co_return false;
  }

  // The body: read from the queued file, encode, and send; the final chunk carries ".\r\n".
  smtp::BodyEncoder enc;
  off_t offset = ::lseek(req_.messageFd, 0, SEEK_CUR);
  if (offset < 0) offset = 0;
  std::string in(65536, '\0'), outbuf;
  for (;;) {
    ssize_t n = ::pread(req_.messageFd, in.data(), in.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      polite_ = false;
      report_.finish('Z', kReadMessage);
      co_return false;
    }
    outbuf.clear();
    if (n == 0) {
      if (!enc.finish(outbuf)) {
        polite_ = false;  // mid-DATA: the connection is just closed, no final dot
        report_.finish('D', kPartialLine);
        co_return false;
      }
      afterDot_ = true;
    } else {
      offset += n;
      enc.feed(std::string_view(in.data(), static_cast<size_t>(n)), outbuf);
    }
    if (auto ec = co_await conn_->write(outbuf)) {
      died();
      co_return false;
    }
    if (n == 0) break;
  }
  rr = co_await conn_->readReply();
  if (!rr.ok()) {
    died(&rr);
    co_return false;
  }
  // K only for a 2xx to the final dot: qmail took any code below 400, which would turn a 1xx or
  // a stray 354 into a false delivery (docs/compatibility.md).
  if (rr.reply.code < 200 || rr.reply.code >= 300) {
    quit(rr.reply.code >= 500 ? 'D' : 'Z', "", " failed after I sent the message", &rr.reply);
    co_return false;
  }
  quit('K', "", " accepted message", &rr.reply);
  co_return true;
}

asio::awaitable<void> Session::run(const TargetList& targets) {
  auto ex = co_await asio::this_coro::executor;
  for (const auto& t : targets.targets) {
    auto conn = std::make_shared<SmtpConn>(ex);
    asio::ip::tcp::endpoint ep(t.address, static_cast<unsigned short>(targets.port));
    std::error_code ec = co_await conn->connect(ep, std::chrono::seconds(cfg_.timeoutConnect));
    if (ec) {
      log::info(text::cat("remote connect relay=", t.fqdn.empty() ? "-" : t.fqdn, "[",
                          t.address.to_string(), "]:", targets.port,
                          " error=", log::value(ec.message())));
      continue;
    }
    conn_ = conn;
    conn_->setTimeout(std::chrono::seconds(cfg_.timeoutRemote));
    ip_ = t.address.to_string();
    relay_ = text::cat(t.fqdn.empty() ? "-" : t.fqdn, "[", ip_, "]:", targets.port);
    // qmail never tries another MX once a TCP connection is up, whatever happens later.
    co_await talk(t, targets.port);
    if (polite_)
      out_.openConn = conn_;
    else
      conn_->close();
    co_return;
  }
  report_.finish('Z', kNoConn);
}

}  // namespace

asio::awaitable<DeliveryResult> deliver(const DeliveryDeps& deps, const DeliveryRequest& req) {
  DeliveryResult out;
  const auto start = std::chrono::steady_clock::now();
  struct InFlight {  // a guard, since a delivery whose shim went away is destroyed mid-way
    RemoteMetrics* m;
    explicit InFlight(RemoteMetrics* metrics) : m(metrics) {
      if (m) m->inFlight().add(1);
    }
    ~InFlight() {
      if (m) m->inFlight().add(-1);
    }
  } inFlight(deps.metrics);
  const RemoteConfig& cfg = *deps.config;
  std::optional<control::Route> route = cfg.routes.lookup(req.host);
  TargetList targets =
      co_await findTargets(*deps.resolver, req.host, route, deps.mxPort, *deps.ipme);
  Session session(deps, req, out);
  if (targets.failKind != 0)
    out.report.finish(targets.failKind, targets.failText);
  else
    co_await session.run(targets);

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (deps.metrics) {
    const char kind = out.report.finalKind();
    deps.metrics->deliveries
        .with({kind == 'K'   ? "success"
               : kind == 'D' ? "permanent"
                             : "temporary"})
        .add(1);
    deps.metrics->deliverySeconds().observe(secs);
    if (session.tlsVersion_ != "-")
      deps.metrics->tlsSessions
          .with({session.levelRequested_, session.tlsVersion_, session.cipher_,
                 session.resumed_ ? "yes" : "no", "no"})
          .add(1);
    if (session.failure_ != "none")
      deps.metrics->tlsFailures.with({session.levelRequested_, session.failure_}).add(1);
  }
  char delay[32];
  std::snprintf(delay, sizeof delay, "%.3f", secs);
  std::string result = out.report.finalText();
  out.logLine =
      text::cat("delivery domain=", log::value(req.host), " rcpts=", req.recipients.size(),
                " relay=", session.relay_.empty() ? "-" : log::value(session.relay_),
                " policy=", session.policySource_, " level=", session.levelRequested_, "/",
                session.levelAchieved_, " tls=", session.tlsVersion_, "/", session.cipher_,
                " verify=", session.verify_, " status=", std::string(1, out.report.finalKind()),
                " delay=", delay, " result=", log::value(result));
  if (deps.events) {
    admin::SessionEvent e;
    e.endTime = admin::unixNow();
    e.direction = "outbound";
    e.peer = session.relay_.empty() ? "-" : session.relay_;
    e.domain = req.host;
    e.levelRequested = session.levelRequested_;
    e.levelAchieved = session.levelAchieved_;
    e.policySource = session.policySource_;
    e.tlsVersion = session.tlsVersion_;
    e.cipher = session.cipher_;
    e.verify = session.verify_;
    e.resumed = session.resumed_;
    e.failureReason = session.failure_;
    e.outcome = std::string(1, out.report.finalKind());
    e.detail = result;
    e.durationSeconds = secs;
    e.recipients = static_cast<uint32_t>(req.recipients.size());
    e.policyGeneration = cfg.generation;
    deps.events->publish(e);
  }
  co_return out;
}

}  // namespace qtls::remoted
