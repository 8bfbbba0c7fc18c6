// Loading the outbound configuration snapshot.
#include "remote_config.h"

#include "control/control_files.h"
#include "util/text.h"

namespace qtls::remoted {

namespace {

// Every TLS context the snapshot's deliveries can need. A tlspolicy ca= file that is missing or
// holds no usable certificate refuses the whole snapshot, naming the line (it is part of the
// policy); a tlshosts file keeps its reason for the deliveries to that host.
absl::Status compileContexts(RemoteConfig& cfg) {
  tls::ClientContextBuilder builder;
  tls::ClientContextSpec base;
  base.ciphers = cfg.ciphers;
  base.clientCertFile = cfg.clientCert;
  cfg.plainContext = builder.get(base);
  if (!cfg.plainContext.ok()) return cfg.plainContext.status();
  for (const auto& [fqdn, pem] : cfg.files.tlshosts) {
    tls::ClientContextSpec spec = base;
    spec.caPem = pem.content;
    cfg.tlshostsContexts.emplace(
        fqdn, pem.error.empty() ? builder.get(spec)
                                : RemoteConfig::Ctx(absl::FailedPreconditionError(pem.error)));
  }
  for (const auto& [destination, e] : cfg.tlspolicy.entries()) {
    tls::ClientContextSpec spec = base;
    spec.minVersion = e.minVersion;
    const std::string where = text::cat(cfg.controlDir, "/tlspolicy line ", e.line);
    if (e.level == policy::TlsLevel::kVerify) {
      if (e.ca.empty()) {
        spec.systemCa = true;
      } else {
        auto content = control::readFile(e.ca);
        if (!content.ok() || !content->has_value())
          return absl::InvalidArgumentError(
              text::cat(where, ": ca=", e.ca, ": ",
                        content.ok() ? "no such file" : std::string(content.status().message())));
        spec.caPem = **content;
      }
    }
    auto ctx = builder.get(spec);
    if (!ctx.ok())
      return absl::InvalidArgumentError(text::cat(where,
                                                  e.ca.empty() ? "" : text::cat(": ca=", e.ca),
                                                  ": ", std::string(ctx.status().message())));
    cfg.entryContexts.emplace(&e, std::move(ctx));
  }
  return absl::OkStatus();
}

}  // namespace

void RemoteConfig::rebase(const std::string& liveHome) {
  home = liveHome;
  controlDir = liveHome + "/control";
  if (!clientCert.empty()) clientCert = controlDir + "/clientcert.pem";
}

absl::StatusOr<std::shared_ptr<RemoteConfig>> loadRemoteConfig(const std::string& home) {
  auto cfg = std::make_shared<RemoteConfig>();
  cfg->home = home;
  cfg->controlDir = home + "/control";
  const std::string& dir = cfg->controlDir;

  auto helo = control::readLine(dir + "/helohost");
  if (!helo.ok()) return helo.status();
  if (helo->has_value()) {
    cfg->helohost = **helo;
  } else {
    auto me = control::readLine(dir + "/me");
    if (!me.ok()) return me.status();
    if (!me->has_value())
      return absl::FailedPreconditionError(
          text::cat("neither ", dir, "/helohost nor ", dir, "/me exists"));
    cfg->helohost = **me;
  }
  if (cfg->helohost.empty() || cfg->helohost.find_first_of("\r\n") != std::string::npos)
    return absl::InvalidArgumentError(text::cat(dir, "/helohost: empty or invalid host name"));

  auto routes = control::readList(dir + "/smtproutes");
  if (!routes.ok()) return routes.status();
  if (routes->has_value()) {
    auto parsed = control::SmtpRoutes::parse(**routes);
    if (!parsed.ok()) return parsed.status();
    cfg->routes = *std::move(parsed);
  }

  auto tc = control::readInt(dir + "/timeoutconnect", 60);
  if (!tc.ok()) return tc.status();
  auto tr = control::readInt(dir + "/timeoutremote", 1200);
  if (!tr.ok()) return tr.status();
  cfg->timeoutConnect = *tc > 0 ? *tc : 1;
  cfg->timeoutRemote = *tr > 0 ? *tr : 1;

  auto table = control::readFile(dir + "/tlspolicy");
  if (!table.ok()) return table.status();
  if (table->has_value()) {
    auto parsed = policy::TlsPolicyTable::parse(**table, dir + "/tlspolicy");
    if (!parsed.ok()) return parsed.status();
    cfg->tlspolicy = std::move(*parsed);
  }

  auto ciphers = control::readList(dir + "/tlsclientciphers");
  if (!ciphers.ok()) return ciphers.status();
  if (ciphers->has_value()) {
    for (const auto& l : **ciphers) {
      if (!cfg->ciphers.empty()) cfg->ciphers += ':';
      cfg->ciphers += l;
    }
  }
  if (control::exists(dir + "/clientcert.pem")) cfg->clientCert = dir + "/clientcert.pem";
  if (auto s = tls::checkClientSettings(cfg->ciphers, cfg->clientCert); !s.ok()) return s;

  auto files = policy::QmailFiles::read(dir);
  if (!files.ok()) return files.status();
  cfg->files = *std::move(files);
  if (auto s = compileContexts(*cfg); !s.ok()) return s;
  return cfg;
}

}  // namespace qtls::remoted
