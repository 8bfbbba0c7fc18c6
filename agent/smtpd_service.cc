// qtls-smtpd's parts for the daemon skeleton (smtpd_service.h).
#include "smtpd_service.h"

#include "admin/policy_compiler.h"
#include "daemon/privileges.h"
#include "log/log.h"
#include "resolve_policy.h"
#include "tls/context_common.h"
#include "util/text.h"

namespace qtls::agent {

namespace {

// qmail-smtpd relays for everyone without rcpthosts; a remote change must not.
absl::Status noOpenRelay(const SmtpdConfig& cfg) {
  if (!cfg.haveRcpthosts)
    return absl::InvalidArgumentError(
        "rcpthosts: a policy without control/rcpthosts would make qtls-smtpd an open "
        "relay; refused");
  return absl::OkStatus();
}

}  // namespace

SmtpdState::SmtpdState(const SmtpdFlags& f) : flags(f) {
  for (const auto& s : f.specs) cipherVariants.insert(s.ciphers);
}

daemon::DaemonParts SmtpdState::parts() {
  daemon::DaemonParts p;
  p.program = "qtls-smtpd";
  p.defaultUser = "qmaild";
  p.reloadWhat = "control files and certificates";
  p.schema = admin::smtpdSchema();
  const std::string home = flags.common.home;
  p.compiler = std::make_unique<admin::TypedCompiler<SmtpdConfig>>(
      [this, home](const std::string& copy) {
        auto cfg = loadSmtpdConfig(copy, cipherVariants);
        if (cfg.ok()) (*cfg)->rebase(home);
        return cfg;
      },
      [this](uint64_t gen, const std::string& digest, const admin::Items&,
             std::shared_ptr<SmtpdConfig> cfg) { return activate(gen, digest, cfg); },
      noOpenRelay, &candidate);
  p.registry = &registry;
  p.events = &events;
  p.configMetrics = &metrics.config;
  p.resolve = [this](const v1::ResolvePolicyRequest& req, v1::ResolvePolicyResponse* out) {
    return resolvePolicy(*store.current(), req, out);
  };
  return p;
}

absl::Status SmtpdState::activate(uint64_t gen, const std::string& digest,
                                  std::shared_ptr<SmtpdConfig> cfg) {
  auto before = store.current();
  if (auto s = store.publish(std::move(cfg), gen, digest); !s.ok()) return s;
  auto now = store.current();
  if (before && before->tlsFor("") && !now->tlsFor(""))
    log::warn(text::cat("policy: generation ", gen,
                        " has no servercert.pem: STARTTLS is no longer offered, a client "
                        "that asks for it gets 454, and clients that require TLS will "
                        "defer their mail"));
  metrics.config.inForce(gen, digest);
  const auto* t = now->tlsFor("");
  const long long notAfter = t ? tls::certificateNotAfter(t->defaultCtx.get()) : -1;
  if (notAfter < 0)
    metrics.certExpiry.remove({"servercert"});
  else
    metrics.certExpiry.with({"servercert"}).set(static_cast<double>(notAfter));
  return absl::OkStatus();
}

SmtpdService::SmtpdService(asio::io_context& io, SmtpdState& state)
    : st_(state),
      listeners_(
          io, state.flags.limits,
          [this]() {
            SessionParams p;
            p.registry = &st_.sessionRegistry;
            p.config = st_.store.current();
            p.candidate = st_.candidate.current();
            p.qmailQueue = st_.flags.queue;
            p.limits = st_.flags.sessionLimits;
            p.metrics = &st_.metrics;
            p.events = &st_.events;
            return p;
          },
          state.sessionRegistry) {}

absl::Status SmtpdService::bind() {
  auto adopted = listeners_.adoptSystemdSockets();
  if (!adopted.ok()) return adopted.status();
  std::vector<ListenerSpec> specs = st_.flags.specs;
  if (*adopted == 0 && specs.empty()) specs = {{"0.0.0.0:25", false, ""}, {"[::]:25", false, ""}};
  for (const auto& s : specs)
    if (auto st = listeners_.bind(s); !st.ok()) return st;
  return absl::OkStatus();
}

absl::Status SmtpdService::accept() {
  listeners_.start();
  return absl::OkStatus();
}

std::string SmtpdService::startedLine() const {
  std::string where;
  for (const auto& s : listeners_.specs())
    where += text::cat(where.empty() ? "" : ",", s.address, s.implicitTls ? "(tls)" : "");
  auto cfg = st_.store.current();
  return text::cat("qtls-smtpd started listen=", where, " home=", st_.flags.common.home,
                   " starttls=", cfg->tlsFor("") ? "yes" : "no",
                   " certrelay=", cfg->certRelay ? "yes" : "no",
                   " rcpthosts=", cfg->haveRcpthosts ? "yes" : "MISSING(open relay)");
}

std::string SmtpdService::status() const {
  auto cfg = st_.store.current();
  return text::cat("policy generation ", cfg->generation, " ", cfg->digest, "; ",
                   listeners_.active(), " sessions open");
}

}  // namespace qtls::agent
