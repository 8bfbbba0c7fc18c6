// Loading the inbound configuration snapshot.
#include "smtpd_config.h"

#include <dirent.h>

#include "control/control_files.h"
#include "util/text.h"

namespace qtls::agent {

asio::ip::address unmapped(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

bool Cidr::contains(const asio::ip::address& raw) const {
  const asio::ip::address a = unmapped(raw);
  if (a.is_v4() != network.is_v4()) return false;
  auto bytesOf = [](const asio::ip::address& x) {
    std::vector<unsigned char> b;
    if (x.is_v4()) {
      auto v = x.to_v4().to_bytes();
      b.assign(v.begin(), v.end());
    } else {
      auto v = x.to_v6().to_bytes();
      b.assign(v.begin(), v.end());
    }
    return b;
  };
  auto na = bytesOf(network), aa = bytesOf(a);
  int bits = prefix;
  for (size_t i = 0; i < na.size() && bits > 0; ++i, bits -= 8) {
    unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((na[i] & mask) != (aa[i] & mask)) return false;
  }
  return true;
}

std::optional<Cidr> parseCidr(const std::string& s) {
  size_t slash = s.find('/');
  std::error_code ec;
  Cidr c;
  c.network = asio::ip::make_address(s.substr(0, slash), ec);
  if (ec) return std::nullopt;
  int max = c.network.is_v4() ? 32 : 128;
  c.prefix = max;
  if (slash != std::string::npos) {
    std::string p = s.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    c.prefix = std::stoi(p);
    if (c.prefix > max) return std::nullopt;
  }
  return c;
}

const tls::ServerContexts* SmtpdConfig::tlsFor(const std::string& listenerCiphers) const {
  auto it = tls.find(listenerCiphers);
  return it == tls.end() ? nullptr : it->second.get();
}

namespace {

absl::Status readSet(const std::string& path, std::set<std::string>& out, bool* present) {
  auto lines = control::readList(path);
  if (!lines.ok()) return lines.status();
  if (present) *present = lines->has_value();
  if (lines->has_value())
    for (const auto& l : **lines) out.insert(text::lower(l));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<SmtpdConfig>> loadSmtpdConfig(
    const std::string& home, const std::set<std::string>& listenerCiphers) {
  auto cfg = std::make_shared<SmtpdConfig>();
  cfg->home = home;
  cfg->controlDir = home + "/control";
  const std::string& dir = cfg->controlDir;

  auto me = control::readLine(dir + "/me");
  if (!me.ok()) return me.status();
  auto greeting = control::readLine(dir + "/smtpgreeting");
  if (!greeting.ok()) return greeting.status();
  if (greeting->has_value())
    cfg->greeting = **greeting;
  else if (me->has_value())
    cfg->greeting = **me;
  else
    return absl::FailedPreconditionError(
        text::cat("neither ", dir, "/smtpgreeting nor ", dir, "/me exists"));
  cfg->localName = me->has_value() ? **me : cfg->greeting;

  auto timeout = control::readInt(dir + "/timeoutsmtpd", 1200);
  if (!timeout.ok()) return timeout.status();
  cfg->timeout = *timeout > 0 ? *timeout : 1;
  auto databytes = control::readInt(dir + "/databytes", 0);
  if (!databytes.ok()) return databytes.status();
  cfg->databytes = *databytes;

  bool more = false;
  if (auto s = readSet(dir + "/rcpthosts", cfg->rcpthosts, &cfg->haveRcpthosts); !s.ok()) return s;
  if (auto s = readSet(dir + "/morercpthosts", cfg->rcpthosts, &more); !s.ok()) return s;
  if (auto s = readSet(dir + "/badmailfrom", cfg->badmailfrom, nullptr); !s.ok()) return s;

  auto relay = control::readList(dir + "/relayclients");
  if (!relay.ok()) return relay.status();
  if (relay->has_value()) {
    for (const auto& l : **relay) {
      auto c = parseCidr(l);
      if (!c)
        return absl::InvalidArgumentError(
            text::cat(dir, "/relayclients: invalid address or range \"", l, "\""));
      cfg->relayClients.push_back(*c);
    }
  }

  bool haveTlsclients = false;
  if (auto s = readSet(dir + "/tlsclients", cfg->tlsclients, &haveTlsclients); !s.ok()) return s;

  if (control::exists(dir + "/servercert.pem")) {
    tls::ServerTlsSpec spec;
    spec.certFile = dir + "/servercert.pem";
    auto ciphers = control::readList(dir + "/tlsserverciphers");
    if (!ciphers.ok()) return ciphers.status();
    if (ciphers->has_value())
      for (const auto& l : **ciphers) spec.ciphers += (spec.ciphers.empty() ? "" : ":") + l;
    // Client certificates are asked for only when they can relay (tlsclients exists) and
    // clientca.pem exists; an unloadable clientca.pem is an error, not a silent "no relay".
    if (haveTlsclients && control::exists(dir + "/clientca.pem")) {
      spec.clientCaFile = dir + "/clientca.pem";
      if (control::exists(dir + "/clientcrl.pem")) spec.clientCrlFile = dir + "/clientcrl.pem";
      cfg->certRelay = true;
    }
    std::set<std::string> variants = listenerCiphers;
    variants.insert("");
    // SNI certificates: control/servercerts/<name>/servercert.pem.
    std::vector<std::string> sniNames;
    if (auto* d = opendir((dir + "/servercerts").c_str())) {
      while (auto* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (control::exists(dir + "/servercerts/" + name + "/servercert.pem"))
          sniNames.push_back(name);
      }
      closedir(d);
    }
    for (const auto& v : variants) {
      auto set = std::make_shared<tls::ServerContexts>();
      tls::ServerTlsSpec s = spec;
      if (!v.empty()) s.ciphers = v;
      auto ctx = tls::buildServerContext(s);
      if (!ctx.ok()) return ctx.status();
      set->defaultCtx = *ctx;
      for (const auto& name : sniNames) {
        tls::ServerTlsSpec sni = s;
        sni.certFile = dir + "/servercerts/" + name + "/servercert.pem";
        auto c = tls::buildServerContext(sni);
        if (!c.ok()) return c.status();
        set->byName[text::lower(name)] = *c;
      }
      set->installSniCallback();
      cfg->tls[v] = set;
    }
  }
  return cfg;
}

}  // namespace qtls::agent
