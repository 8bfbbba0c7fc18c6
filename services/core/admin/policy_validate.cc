// The policy store's checks: which files a daemon's policy owns (its schema), each item on
// its own (path, PEM content, keys only where they belong), and the whole policy through the
// daemon's own loader on a private copy of control/.
#include <dirent.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "admin/policy_store.h"
#include "admin/policy_store_internal.h"
#include "control/control_files.h"
#include "util/host_name.h"
#include "util/text.h"

namespace qtls::admin {
namespace {

using namespace internal;
namespace fs = std::filesystem;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
BioPtr memBio(const std::string& s) {
  return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::vector<X509*> readCerts(const std::string& pem) {
  std::vector<X509*> out;
  BioPtr bio = memBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.push_back(x);
  ERR_clear_error();
  return out;
}

void freeCerts(std::vector<X509*>& v) {
  for (X509* x : v) X509_free(x);
  v.clear();
}

const char* kindWord(ItemKind k) {
  switch (k) {
    case ItemKind::kTlshostCa:
      return "tlshost-ca";
    case ItemKind::kTlshostsExhaustive:
      return "exhaustivelist";
    case ItemKind::kNotlshost:
      return "notlshost";
    case ItemKind::kTlspolicy:
      return "tlspolicy";
    case ItemKind::kClientCert:
      return "client-cert";
    case ItemKind::kClientCiphers:
      return "client-ciphers";
    case ItemKind::kServerCert:
      return "server-cert";
    case ItemKind::kClientCa:
      return "client-ca";
    case ItemKind::kClientCrl:
      return "client-crl";
    case ItemKind::kTlsclients:
      return "tlsclients";
    case ItemKind::kServerCiphers:
      return "server-ciphers";
    case ItemKind::kRelayClients:
      return "relayclients";
    case ItemKind::kRcpthosts:
      return "rcpthosts";
    default:
      return "unknown";
  }
}

}  // namespace

std::string kindName(ItemKind k) { return kindWord(k); }

Schema remotedSchema() {
  return Schema{"qtls-remoted",
                {
                    {ItemKind::kTlshostsExhaustive, "tlshosts/exhaustivelist", "", Content::kAny},
                    {ItemKind::kTlshostCa, "tlshosts/", ".pem", Content::kCaCerts},
                    {ItemKind::kNotlshost, "notlshosts/", "", Content::kAny},
                    {ItemKind::kTlspolicy, "tlspolicy", "", Content::kText},
                    {ItemKind::kClientCert, "clientcert.pem", "", Content::kCertAndKey},
                    {ItemKind::kClientCiphers, "tlsclientciphers", "", Content::kText},
                }};
}

Schema smtpdSchema() {
  return Schema{"qtls-smtpd",
                {
                    {ItemKind::kServerCert, "servercert.pem", "", Content::kCertAndKey},
                    {ItemKind::kClientCa, "clientca.pem", "", Content::kCaCerts},
                    {ItemKind::kClientCrl, "clientcrl.pem", "", Content::kCrl},
                    {ItemKind::kTlsclients, "tlsclients", "", Content::kText},
                    {ItemKind::kServerCiphers, "tlsserverciphers", "", Content::kText},
                    {ItemKind::kRelayClients, "relayclients", "", Content::kText},
                    {ItemKind::kRcpthosts, "rcpthosts", "", Content::kHostList},
                }};
}

std::string PolicyStore::redactKeys(const std::string& pem, bool* redacted) {
  // Line by line, as PEM readers work: from a "-----BEGIN ...PRIVATE KEY..." line through the
  // next "-----END " line (or the end of the text) nothing is kept.
  std::string out;
  *redacted = false;
  bool inKey = false;
  size_t i = 0;
  while (i < pem.size()) {
    size_t nl = pem.find('\n', i);
    const size_t end = nl == std::string::npos ? pem.size() : nl + 1;
    std::string_view line(pem.data() + i, end - i);
    if (!inKey && line.substr(0, 11) == "-----BEGIN " &&
        line.find("PRIVATE KEY") != std::string_view::npos) {
      inKey = true;
      *redacted = true;
    } else if (inKey) {
      if (line.substr(0, 9) == "-----END ") inKey = false;
    } else {
      out.append(line);
    }
    i = end;
  }
  return out;
}

std::optional<ItemKind> PolicyStore::kindOf(std::string_view path) const {
  for (const Rule& r : schema_.rules) {
    if (!r.directory()) {
      if (path == r.path) return r.kind;
      continue;
    }
    if (path.size() <= r.path.size() + r.suffix.size() || path.substr(0, r.path.size()) != r.path ||
        path.substr(path.size() - r.suffix.size()) != r.suffix)
      continue;
    std::string_view name =
        path.substr(r.path.size(), path.size() - r.path.size() - r.suffix.size());
    if (name.find('/') != std::string_view::npos || name[0] == '.') continue;
    return r.kind;
  }
  return std::nullopt;
}

bool PolicyStore::secret(std::string_view path) const {
  auto k = kindOf(path);
  for (const Rule& r : schema_.rules)
    if (k && r.kind == *k) return r.content == Content::kCertAndKey;
  return false;
}

absl::Status PolicyStore::validateItem(const std::string& path, const std::string& content) const {
  auto invalid = [&](const std::string& why) {
    return absl::InvalidArgumentError(text::cat(path, ": ", why));
  };
  if (path.empty()) return invalid("empty path");
  if (path.find('\0') != std::string::npos)
    return absl::InvalidArgumentError("a path contains a NUL byte");
  if (path[0] == '/') return invalid("absolute paths are refused; name the file under control/");
  for (std::string_view part : text::split(path, '/'))
    if (part == ".." || part == "." || part.empty())
      return invalid("\"..\", \".\" and empty path components are refused");
  std::optional<ItemKind> kind = kindOf(path);
  const Rule* rule = nullptr;
  for (const Rule& r : schema_.rules)
    if (kind && r.kind == *kind) rule = &r;
  if (rule == nullptr) {
    std::string owned;
    for (const Rule& r : schema_.rules) owned += (owned.empty() ? "" : ", ") + r.pattern();
    return invalid(text::cat("not a file ", schema_.daemon, " policy owns (", owned, ")"));
  }
  if (rule->directory()) {
    std::string_view name(path);
    name = name.substr(rule->path.size(), name.size() - rule->path.size() - rule->suffix.size());
    if (!text::validHostName(name))
      return invalid(text::cat("\"", name, "\" is not a valid host name"));
  }
  if (content.size() > kMaxItemBytes)
    return invalid(text::cat("larger than ", kMaxItemBytes, " bytes"));
  if (rule->content != Content::kAny && content.find('\0') != std::string::npos)
    return invalid("contains a NUL byte");
  if (rule->content != Content::kCertAndKey &&
      content.find("PRIVATE KEY-----") != std::string::npos)
    return invalid("holds a private key; only clientcert.pem and servercert.pem may");
  if (std::string why = contentProblem(*rule, content); !why.empty()) return invalid(why);
  return absl::OkStatus();
}

std::string PolicyStore::contentProblem(const Rule& rule, const std::string& content) const {
  ERR_clear_error();
  switch (rule.content) {
    case Content::kAny:
    case Content::kText:
      return "";
    case Content::kHostList:
      for (std::string_view line : text::split(content, '\n')) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
          line.remove_suffix(1);
        if (line.empty() || line[0] == '#') continue;
        if (!text::validHostName(line, text::HostName::kSuffixAllowed))
          return text::cat("\"", line, "\" is not a valid host name");
      }
      return "";
    case Content::kCaCerts: {
      // One parse per distinct bundle in a request: OpenSSL 3 takes ~50 us a certificate,
      // and a policy may hold the same bundle for hundreds of hosts.
      const std::string digest = sha256Hex(content);
      if (caChecked_.count(digest)) return "";
      std::vector<X509*> certs = readCerts(content);
      const size_t n = certs.size();
      freeCerts(certs);
      if (n == 0) return "no PEM certificate in it";
      caChecked_.insert(digest);
      return "";
    }
    case Content::kCrl: {
      BioPtr bio = memBio(content);
      int n = 0;
      while (X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
        X509_CRL_free(c);
        ++n;
      }
      ERR_clear_error();
      if (n == 0) return "no PEM CRL in it";
      return "";
    }
    case Content::kCertAndKey: {
      std::vector<X509*> certs = readCerts(content);
      std::vector<EVP_PKEY*> keys;
      BioPtr bio = memBio(content);
      // An encrypted key must not make OpenSSL prompt on a terminal: no passphrase, refused.
      auto noPassphrase = [](char*, int, int, void*) { return 0; };
      while (EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr))
        keys.push_back(k);
      ERR_clear_error();
      std::string why;
      if (certs.empty())
        why = "no PEM certificate in it";
      else if (keys.empty())
        why = "no private key in it (PEM, unencrypted)";
      for (EVP_PKEY* k : keys) {
        bool match = false;
        for (X509* x : certs) match = match || X509_check_private_key(x, k) == 1;
        ERR_clear_error();
        if (!match && why.empty()) why = "the private key does not match any certificate in it";
      }
      for (EVP_PKEY* k : keys) EVP_PKEY_free(k);
      freeCerts(certs);
      return why;
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<CompiledPolicy>> PolicyStore::compile(const Items& items,
                                                                     bool viaApi) const {
  if (!compiler_) return nullptr;
  // A private copy of control/ with the candidate in place, loaded by the daemon's own loader.
  const std::string home = state_ + "/check";
  std::error_code ec;
  fs::remove_all(home, ec);
  fs::create_directories(home, ec);
  if (ec) return absl::InternalError(text::cat("cannot create ", home, ": ", ec.message()));
  ::chmod(home.c_str(), 0700);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{home};
  // Real directories and copies of contents only: control/ (or a subdirectory) may be a
  // symlink (Debian's /var/qmail/control -> /etc/qmail), and the live files must never be
  // reachable from here. Files the policy does not own are copied as the loader sees them;
  // one this daemon cannot read is left out (the loader says so if it needs it).
  const std::string copy = home + "/control";
  fs::create_directories(copy, ec);
  struct stat st;
  if (ec || ::lstat(copy.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::InternalError(text::cat("cannot create ", copy));
  for (auto it = fs::recursive_directory_iterator(control_,
                                                  fs::directory_options::follow_directory_symlink |
                                                      fs::directory_options::skip_permission_denied,
                                                  ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    // Lexical: fs::relative would follow the links `qtlsctl confine` leaves in control/.
    const std::string rel = it->path().lexically_relative(control_).string();
    if (it->is_directory(ec)) {
      // Two levels: tlshosts/, and servercerts/<name>/ for the agent's SNI certificates.
      if (it->path().filename().string()[0] == '.' || it.depth() >= 2)
        it.disable_recursion_pending();
      else
        fs::create_directory(copy + "/" + rel, ec);
      continue;
    }
    if (!it->is_regular_file(ec) || kindOf(rel)) continue;
    auto content = control::readFile(it->path().string());
    if (!content.ok() || !*content) continue;
    if (auto w = writeAtomic(copy + "/" + rel, **content, 0600, false); !w.ok()) return w;
  }
  if (ec)
    return absl::InternalError(text::cat("cannot read ", control_, " to check: ", ec.message()));
  for (const auto& [path, content] : items) {
    fs::create_directories(dirOf(copy + "/" + path), ec);
    if (auto w = writeAtomic(copy + "/" + path, content, 0600, false); !w.ok()) return w;
  }
  auto compiled = compiler_->compile(home);
  absl::Status s = compiled.status();
  if (s.ok() && viaApi) s = (*compiled)->checkChange();
  if (!s.ok()) {
    // Name files by their place in control/, not in the private copy: relative to control/
    // for an API caller, the full path for the log of a start or reload.
    const std::string as = viaApi ? "" : control_ + "/";
    std::string msg(s.message());
    for (size_t p; (p = msg.find(home + "/control/")) != std::string::npos;)
      msg.replace(p, home.size() + 9, as);
    return absl::InvalidArgumentError(msg);
  }
  return compiled;
}

}  // namespace qtls::admin
