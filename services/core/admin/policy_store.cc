// PolicyStore: validation, the crash-safe commit, recovery, rollback and the audit line.
#include "admin/policy_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

#include "admin/text_diff.h"
#include "control/control_files.h"
#include "log/log.h"
#include "util/host_name.h"
#include "util/netstring.h"
#include "util/text.h"

namespace qtls::admin {
namespace {

namespace fs = std::filesystem;

std::string errnoText(const std::string& what, const std::string& path) {
  return text::cat(what, " ", path, ": ", std::strerror(errno));
}

absl::Status fsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(errnoText("cannot open directory", dir));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(errnoText("cannot fsync", dir));
  return absl::OkStatus();
}

std::string dirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Temp file in the same directory, fsync, rename over `path`, fsync the directory. An
// existing file's mode and owner carry over; a new file gets `mode`.
absl::Status writeAtomic(const std::string& path, const std::string& data, mode_t mode,
                         bool syncDir = true) {
  const std::string dir = dirOf(path);
  const std::string tmp =
      text::cat(dir, "/.qtls-tmp.", path.substr(path.rfind('/') + 1), ".", ::getpid());
  struct stat old;
  const bool existed = ::stat(path.c_str(), &old) == 0;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                  existed ? (old.st_mode & 07777) : mode);
  if (fd < 0) return absl::InternalError(errnoText("cannot create", tmp));
  auto fail = [&](const std::string& what) {
    absl::Status s = absl::InternalError(errnoText(what, tmp));
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (existed) {
    // Best effort: only root may give a file away; the mode is what keeps secrets secret.
    if (::fchown(fd, old.st_uid, old.st_gid) != 0) {
    }
    if (::fchmod(fd, old.st_mode & 07777) != 0) return fail("cannot chmod");
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(errnoText("cannot close", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = absl::InternalError(errnoText("cannot rename onto", path));
    ::unlink(tmp.c_str());
    return s;
  }
  return syncDir ? fsyncDir(dir) : absl::OkStatus();
}

std::string lastOpenSslError() {
  unsigned long e = ERR_peek_last_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

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

std::string snapshotPath(const std::string& state, uint64_t gen) {
  return text::cat(state, "/generations/", gen, ".snap");
}

}  // namespace

// Netstrings, qmail's own framing, after a header line carrying the digest.
std::string encodeSnapshot(const Items& items) {
  std::string out = text::cat("qtls-policy-snapshot 1 ", PolicyStore::digestOf(items), "\n");
  for (const auto& [path, content] : items) {
    text::appendNetstring(out, path);
    text::appendNetstring(out, content);
  }
  return out;
}

absl::StatusOr<Items> decodeSnapshot(const std::string& data, const std::string& file) {
  auto bad = [&](const char* why) {
    return absl::DataLossError(text::cat(file, ": corrupt policy snapshot: ", why));
  };
  size_t nl = data.find('\n');
  const std::string head = "qtls-policy-snapshot 1 ";
  if (nl == std::string::npos || data.compare(0, head.size(), head) != 0) return bad("header");
  const std::string digest = data.substr(head.size(), nl - head.size());
  Items items;
  std::string_view rest = std::string_view(data).substr(nl + 1);
  while (!rest.empty()) {
    std::string path, content;
    if (!text::readNetstring(rest, path) || !text::readNetstring(rest, content))
      return bad("framing");
    items[path] = std::move(content);
  }
  if (PolicyStore::digestOf(items) != digest) return bad("digest mismatch");
  return items;
}

namespace {

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

std::string describe(const std::vector<Change>& changes) {
  std::string what;
  for (const Change& c : changes)
    what += text::cat(what.empty() ? "" : ",",
                      c.op == Change::Op::kAdded     ? "+"
                      : c.op == Change::Op::kRemoved ? "-"
                                                     : "~",
                      c.path);
  return what.empty() ? "none" : what;
}

void crashPoint(const char* point) {
  const char* want = std::getenv("QTLS_CRASH_POINT");
  if (want != nullptr && std::strcmp(want, point) == 0) {
    log::warn(text::cat("QTLS_CRASH_POINT=", point, ": killing myself as a test asked"));
    ::kill(::getpid(), SIGKILL);
  }
}

Schema remotedSchema(std::function<absl::Status(const std::string&)> check) {
  return Schema{"qtls-remoted",
                {
                    {ItemKind::kTlshostsExhaustive, "tlshosts/exhaustivelist", "", Content::kAny},
                    {ItemKind::kTlshostCa, "tlshosts/", ".pem", Content::kCaCerts},
                    {ItemKind::kNotlshost, "notlshosts/", "", Content::kAny},
                    {ItemKind::kTlspolicy, "tlspolicy", "", Content::kText},
                    {ItemKind::kClientCert, "clientcert.pem", "", Content::kCertAndKey},
                    {ItemKind::kClientCiphers, "tlsclientciphers", "", Content::kText},
                },
                std::move(check)};
}

Schema smtpdSchema(std::function<absl::Status(const std::string&)> check) {
  return Schema{"qtls-smtpd",
                {
                    {ItemKind::kServerCert, "servercert.pem", "", Content::kCertAndKey},
                    {ItemKind::kClientCa, "clientca.pem", "", Content::kCaCerts},
                    {ItemKind::kClientCrl, "clientcrl.pem", "", Content::kCrl},
                    {ItemKind::kTlsclients, "tlsclients", "", Content::kText},
                    {ItemKind::kServerCiphers, "tlsserverciphers", "", Content::kText},
                    {ItemKind::kRelayClients, "relayclients", "", Content::kText},
                    {ItemKind::kRcpthosts, "rcpthosts", "", Content::kHostList},
                },
                std::move(check)};
}

PolicyStore::PolicyStore(Schema schema, std::string home, std::string stateDir, Activate activate)
    : schema_(std::move(schema)),
      home_(std::move(home)),
      control_(home_ + "/control"),
      state_(std::move(stateDir)),
      activate_(std::move(activate)) {}

PolicyStore::~PolicyStore() {
  if (lockFd_ >= 0) ::close(lockFd_);  // releases the flock
}

std::string PolicyStore::sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

std::string PolicyStore::digestOf(const Items& items) {
  std::string all;
  for (const auto& [path, content] : items) {
    text::appendNetstring(all, path);
    text::appendNetstring(all, content);
  }
  return "sha256:" + sha256Hex(all);
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

absl::StatusOr<Items> PolicyStore::readDisk() const {
  Items items;
  for (const Rule& r : schema_.rules) {
    if (!r.directory()) {
      auto content = control::readFile(control_ + "/" + r.path);
      if (!content.ok()) return content.status();
      if (*content) items[r.path] = std::move(**content);
      continue;
    }
    const std::string dir = control_ + "/" + r.path;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) continue;
      return absl::InternalError(errnoText("cannot read directory", dir));
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
    ::closedir(d);
    for (const std::string& n : names) {
      const std::string path = r.path + n;
      if (n.empty() || n[0] == '.' || kindOf(path) != r.kind) continue;
      struct stat st;
      if (::stat((control_ + "/" + path).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      auto content = control::readFile(control_ + "/" + path);
      if (!content.ok()) return content.status();
      if (*content) items[path] = std::move(**content);
    }
  }
  return items;
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
  ERR_clear_error();
  switch (rule->content) {
    case Content::kAny:
    case Content::kText:
      return absl::OkStatus();
    case Content::kHostList:
      for (std::string_view line : text::split(content, '\n')) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
          line.remove_suffix(1);
        if (line.empty() || line[0] == '#') continue;
        if (!text::validHostName(line, text::HostName::kSuffixAllowed))
          return invalid(text::cat("\"", line, "\" is not a valid host name"));
      }
      return absl::OkStatus();
    case Content::kCaCerts: {
      std::vector<X509*> certs = readCerts(content);
      const size_t n = certs.size();
      freeCerts(certs);
      if (n == 0) return invalid("no PEM certificate in it");
      return absl::OkStatus();
    }
    case Content::kCrl: {
      BioPtr bio = memBio(content);
      int n = 0;
      while (X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
        X509_CRL_free(c);
        ++n;
      }
      ERR_clear_error();
      if (n == 0) return invalid("no PEM CRL in it");
      return absl::OkStatus();
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
      return why.empty() ? absl::OkStatus() : invalid(why);
    }
  }
  return absl::OkStatus();
}

absl::Status PolicyStore::checkWhole(const Items& items) const {
  if (!schema_.check) return absl::OkStatus();
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
    const std::string rel = fs::relative(it->path(), control_, ec).string();
    if (ec) break;
    if (it->is_directory(ec)) {
      if (rel.find('/') != std::string::npos || rel == "." || rel[0] == '.')
        it.disable_recursion_pending();  // qmail's control/ is one level of subdirectories
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
  absl::Status s = schema_.check(home);
  if (!s.ok()) {
    // Name files by their place in control/, not in the private copy.
    std::string msg(s.message());
    for (size_t p; (p = msg.find(home + "/control/")) != std::string::npos;)
      msg.replace(p, home.size() + 9, "");
    return absl::InvalidArgumentError(msg);
  }
  return absl::OkStatus();
}

absl::Status PolicyStore::writeControl(const Items& next) const {
  auto disk = readDisk();
  if (!disk.ok()) return disk.status();
  std::set<std::string> dirs;
  bool first = true;
  for (const auto& [path, content] : next) {
    auto it = disk->find(path);
    if (it != disk->end() && it->second == content) continue;
    const std::string full = control_ + "/" + path;
    if (dirOf(full) != control_) {
      std::error_code ec;
      if (fs::create_directories(dirOf(full), ec)) dirs.insert(control_);
      if (ec)
        return absl::InternalError(text::cat("cannot create ", dirOf(full), ": ", ec.message()));
    }
    if (auto s = writeAtomic(full, content, secret(path) ? 0600 : 0644, false); !s.ok()) return s;
    dirs.insert(dirOf(full));
    if (first) crashPoint("control-partial");
    first = false;
  }
  for (const auto& [path, content] : *disk) {
    if (next.count(path)) continue;
    const std::string full = control_ + "/" + path;
    if (::unlink(full.c_str()) != 0 && errno != ENOENT)
      return absl::InternalError(errnoText("cannot remove", full));
    dirs.insert(dirOf(full));
  }
  for (const std::string& d : dirs)
    if (auto s = fsyncDir(d); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status PolicyStore::persistGeneration(uint64_t gen, const Items& items) {
  if (auto s = writeAtomic(snapshotPath(state_, gen), encodeSnapshot(items), 0600); !s.ok())
    return s;
  if (auto s = writeAtomic(state_ + "/current", text::cat(gen, " ", digestOf(items), "\n"), 0600);
      !s.ok())
    return s;
  // Older generations beyond the ones kept are forgotten.
  std::vector<uint64_t> gens = history();
  for (size_t i = 0; i + kKeepGenerations < gens.size(); ++i)
    ::unlink(snapshotPath(state_, gens[i]).c_str());
  return absl::OkStatus();
}

std::vector<uint64_t> PolicyStore::history() const {
  std::vector<uint64_t> out;
  DIR* d = ::opendir((state_ + "/generations").c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".snap") == 0 &&
        std::strspn(n.c_str(), "0123456789") == n.size() - 5)
      out.push_back(std::strtoull(n.c_str(), nullptr, 10));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status PolicyStore::open() {
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  fs::create_directories(state_ + "/generations", ec);
  if (ec) return absl::InternalError(text::cat("cannot create ", state_, ": ", ec.message()));
  ::chmod(state_.c_str(), 0700);
  // One daemon per state directory: two would hand out the same generation numbers.
  if (lockFd_ < 0) {
    lockFd_ = ::open((state_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockFd_ < 0) return absl::InternalError(errnoText("cannot open", state_ + "/lock"));
    if (::flock(lockFd_, LOCK_EX | LOCK_NB) != 0)
      return absl::FailedPreconditionError(text::cat(
          state_, " is in use by another daemon; give each instance its own --state-dir"));
  }

  // 1. Finish a change that reached its commit point.
  auto pending = control::readLine(state_ + "/pending");
  if (!pending.ok()) return pending.status();
  if (*pending) {
    const uint64_t gen = std::strtoull((*pending)->c_str(), nullptr, 10);
    auto snap = control::readFile(snapshotPath(state_, gen));
    if (!snap.ok()) return snap.status();
    if (!*snap)
      return absl::DataLossError(
          text::cat(state_, "/pending names generation ", gen, " but its snapshot is missing"));
    auto items = decodeSnapshot(**snap, snapshotPath(state_, gen));
    if (!items.ok()) return items.status();
    if (auto s = writeControl(*items); !s.ok()) return s;
    if (auto s =
            writeAtomic(state_ + "/current", text::cat(gen, " ", digestOf(*items), "\n"), 0600);
        !s.ok())
      return s;
    ::unlink((state_ + "/pending").c_str());
    if (auto s = fsyncDir(state_); !s.ok()) return s;
    log::warn(text::cat("policy: finished the change to generation ", gen,
                        " that was interrupted by a crash"));
  }

  // 2. The generation in force, and hand edits made while the daemon was down.
  auto current = control::readLine(state_ + "/current");
  if (!current.ok()) return current.status();
  auto disk = readDisk();
  if (!disk.ok()) return disk.status();
  const std::string digest = digestOf(*disk);
  uint64_t gen = 1;
  if (!*current) {
    // No record of the generation in force: continue after any generation still kept, never
    // reuse a number for different content.
    std::vector<uint64_t> kept = history();
    if (!kept.empty()) gen = kept.back() + 1;
    if (auto s = persistGeneration(gen, *disk); !s.ok()) return s;
    audit("start", "init", "applied", gen - 1, gen, digest, diff({}, *disk),
          kept.empty() ? "first start" : "state/current was missing");
  } else {
    std::vector<std::string_view> f = text::splitAny(**current, " ");
    gen = f.empty() ? 0 : std::strtoull(std::string(f[0]).c_str(), nullptr, 10);
    if (gen == 0 || f.size() != 2)
      return absl::DataLossError(text::cat(state_, "/current is corrupt: ", **current));
    if (f[1] != digest) {
      Items before;
      if (auto snap = control::readFile(snapshotPath(state_, gen)); snap.ok() && *snap)
        if (auto items = decodeSnapshot(**snap, snapshotPath(state_, gen)); items.ok())
          before = std::move(*items);
      ++gen;
      if (auto s = persistGeneration(gen, *disk); !s.ok()) return s;
      audit("start", "hand-edit", "applied", gen - 1, gen, digest, diff(before, *disk),
            "control files changed while the daemon was down");
    }
  }
  if (auto s = activate_(gen, *disk); !s.ok()) return s;
  cur_ = Snapshot{gen, digest, std::move(*disk)};
  return absl::OkStatus();
}

absl::Status PolicyStore::reloadFromDisk(const std::string& caller) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!interrupted_.empty()) return absl::UnavailableError(interrupted_);
  auto disk = readDisk();
  if (!disk.ok()) return disk.status();
  const std::string digest = digestOf(*disk);
  if (digest == cur_.digest) return activate_(cur_.generation, *disk);  // other control files
  const uint64_t gen = cur_.generation + 1;
  std::vector<Change> changes = diff(cur_.items, *disk);
  if (auto s = activate_(gen, *disk); !s.ok()) {
    audit(caller, "hand-edit", "refused", cur_.generation, cur_.generation, digest, changes,
          std::string(s.message()));
    return s;
  }
  if (auto s = persistGeneration(gen, *disk); !s.ok())
    log::error(text::cat("policy: generation ", gen,
                         " is in force but not persisted: ", std::string(s.message())));
  audit(caller, "hand-edit", "applied", cur_.generation, gen, digest, changes, "");
  cur_ = Snapshot{gen, digest, std::move(*disk)};
  return absl::OkStatus();
}

Snapshot PolicyStore::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cur_;
}

std::vector<Change> PolicyStore::diff(const Items& from, const Items& to) const {
  std::vector<Change> out;
  auto add = [&](const std::string& path, Change::Op op, const std::string* a,
                 const std::string* b) {
    Change c{path,
             op,
             kindOf(path).value_or(ItemKind::kUnspecified),
             a ? sha256Hex(*a) : "",
             b ? sha256Hex(*b) : "",
             ""};
    if (!secret(path)) c.diff = unifiedDiff(a ? *a : "", b ? *b : "", path);
    out.push_back(std::move(c));
  };
  for (const auto& [path, content] : from) {
    auto it = to.find(path);
    if (it == to.end())
      add(path, Change::Op::kRemoved, &content, nullptr);
    else if (it->second != content)
      add(path, Change::Op::kModified, &content, &it->second);
  }
  for (const auto& [path, content] : to)
    if (!from.count(path)) add(path, Change::Op::kAdded, nullptr, &content);
  std::sort(out.begin(), out.end(),
            [](const Change& a, const Change& b) { return a.path < b.path; });
  return out;
}

void PolicyStore::audit(const std::string& caller, const std::string& op, const std::string& result,
                        uint64_t before, uint64_t after, const std::string& digest,
                        const std::vector<Change>& changes, const std::string& reason) const {
  const std::string what = describe(changes);
  const std::string line = text::cat(
      "audit daemon=", schema_.daemon, " caller=", log::value(caller), " op=", op,
      " result=", result, " generation=", before, "->", after, " digest=", digest,
      " changes=", log::value(what), " reason=", log::value(reason.empty() ? "-" : reason));
  log::info(line);
  if (observer_) observer_(op, result == "applied");
  // The same line, kept with the state: a record that outlives log rotation.
  int fd = ::open((state_ + "/audit.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const std::string l = line + "\n";
    if (::write(fd, l.data(), l.size()) < 0) {
    }
    ::close(fd);
  }
}

absl::Status PolicyStore::checkExpected(uint64_t expected,
                                        const std::string& expectedDigest) const {
  if (expected == 0 && expectedDigest.empty())
    return absl::InvalidArgumentError(
        "expected_generation: required (or expected_digest); read them with GetPolicy");
  if (expected != 0 && expected != cur_.generation)
    return absl::FailedPreconditionError(text::cat(
        "generation conflict: the change expected generation ", expected, " but generation ",
        cur_.generation, " is in force; read the policy again and reapply the change to it"));
  if (!expectedDigest.empty() && expectedDigest != cur_.digest)
    return absl::FailedPreconditionError(
        text::cat("content conflict: the change expected ", expectedDigest, " but generation ",
                  cur_.generation, " in force is ", cur_.digest,
                  "; read the policy again and reapply the change to it"));
  return absl::OkStatus();
}

absl::StatusOr<ChangeResult> PolicyStore::commit(const Items& next, uint64_t expected,
                                                 const std::string& expectedDigest, bool dryRun,
                                                 const std::string& op, const std::string& reason,
                                                 const std::string& caller) {
  ChangeResult r;
  r.generationBefore = r.generationAfter = cur_.generation;
  r.digestBefore = cur_.digest;
  r.digestAfter = digestOf(next);
  r.changes = diff(cur_.items, next);
  if (!interrupted_.empty()) return absl::UnavailableError(interrupted_);
  if (auto s = checkExpected(expected, expectedDigest); !s.ok()) {
    audit(caller, op, "refused", cur_.generation, cur_.generation, r.digestAfter, r.changes,
          std::string(s.message()));
    return s;
  }
  // A hand edit not yet reloaded would be overwritten without a trace: refuse instead.
  if (auto disk = readDisk(); !disk.ok() || digestOf(*disk) != cur_.digest) {
    auto s = disk.ok() ? absl::FailedPreconditionError(text::cat(
                             "control files were edited by hand since generation ", cur_.generation,
                             " was loaded (", describe(diff(cur_.items, *disk)),
                             "); send SIGHUP to make the edit a generation, then retry"))
                       : disk.status();
    audit(caller, op, "refused", cur_.generation, cur_.generation, r.digestAfter, r.changes,
          std::string(s.message()));
    return s;
  }
  if (auto s = checkWhole(next); !s.ok()) {
    audit(caller, op, "refused", cur_.generation, cur_.generation, r.digestAfter, r.changes,
          std::string(s.message()));
    return s;
  }
  if (dryRun || r.changes.empty()) return r;

  // Before the commit point: can every directory the change touches be written?
  for (const Change& c : r.changes) {
    std::string dir = dirOf(control_ + "/" + c.path);
    if (::access(dir.c_str(), F_OK) != 0) dir = control_;
    if (::access(dir.c_str(), W_OK) != 0) {
      auto s = absl::FailedPreconditionError(
          text::cat("cannot write ", dir, ": ", std::strerror(errno),
                    "; the daemon's user must be able to write the files its policy owns"));
      audit(caller, op, "refused", cur_.generation, cur_.generation, r.digestAfter, r.changes,
            std::string(s.message()));
      return s;
    }
  }
  const uint64_t gen = cur_.generation + 1;
  if (auto s = writeAtomic(snapshotPath(state_, gen), encodeSnapshot(next), 0600); !s.ok())
    return s;
  crashPoint("snapshot-written");
  if (auto s = writeAtomic(state_ + "/pending", text::cat(gen, "\n"), 0600); !s.ok()) return s;
  crashPoint("pending-written");
  auto broken = [&](const absl::Status& s) {
    // Past the commit point: only the roll-forward at the next start may touch the files.
    interrupted_ =
        text::cat("the change to generation ", gen, " was interrupted (", std::string(s.message()),
                  "); restart the daemon to finish it before any other change");
    log::error(text::cat("policy: ", interrupted_));
    audit(caller, op, "interrupted", gen - 1, gen, r.digestAfter, r.changes, reason);
    return absl::InternalError(interrupted_);
  };
  if (auto s = writeControl(next); !s.ok()) return broken(s);
  crashPoint("control-written");
  if (auto s = persistGeneration(gen, next); !s.ok()) return broken(s);
  crashPoint("current-written");
  ::unlink((state_ + "/pending").c_str());
  fsyncDir(state_).IgnoreError();

  cur_ = Snapshot{gen, r.digestAfter, next};
  // Applied means serving. The loader accepted this content on a private copy, so only the
  // machine can fail it here (disk, permissions): the files are generation `gen`, the daemon
  // still serves the one before, and nothing else changes until a restart loads `gen`.
  if (auto s = activate_(gen, next); !s.ok())
    return broken(absl::InternalError(text::cat("generation ", gen,
                                                " was written but could not "
                                                "be loaded: ",
                                                std::string(s.message()),
                                                "; the daemon still serves generation ", gen - 1)));
  r.applied = true;
  r.generationAfter = gen;
  audit(caller, op, "applied", gen - 1, gen, r.digestAfter, r.changes, reason);
  return r;
}

absl::StatusOr<ChangeResult> PolicyStore::apply(const ChangeRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  auto refuse = [&](absl::Status s) {
    audit(req.caller, "apply", "refused", cur_.generation, cur_.generation, "-", {},
          std::string(s.message()));
    return s;
  };
  if (req.expectedGeneration == 0 && req.expectedDigest.empty())
    return refuse(checkExpected(0, ""));
  Items next = req.replace ? Items{} : cur_.items;
  for (const auto& [path, content] : req.put) {
    if (auto s = validateItem(path, content); !s.ok())
      return refuse(absl::InvalidArgumentError(text::cat("put ", std::string(s.message()))));
    next[path] = content;
  }
  for (const std::string& path : req.remove) {
    if (!kindOf(path)) {
      absl::Status s = validateItem(path, "");
      return refuse(absl::InvalidArgumentError(text::cat("remove ", std::string(s.message()))));
    }
    if (req.put.count(path))
      return refuse(absl::InvalidArgumentError(text::cat("remove ", path, ": also in put")));
    if (!cur_.items.count(path))
      return refuse(absl::InvalidArgumentError(
          text::cat("remove ", path, ": no such file in generation ", cur_.generation)));
    next.erase(path);
  }
  return commit(next, req.expectedGeneration, req.expectedDigest, req.dryRun, "apply", req.reason,
                req.caller);
}

absl::StatusOr<ChangeResult> PolicyStore::rollback(uint64_t expectedGeneration,
                                                   uint64_t toGeneration, bool dryRun,
                                                   const std::string& reason,
                                                   const std::string& caller,
                                                   const std::string& expectedDigest) {
  std::lock_guard<std::mutex> lock(mu_);
  return rollbackLocked(expectedGeneration, toGeneration, dryRun, reason, caller, expectedDigest);
}

absl::StatusOr<ChangeResult> PolicyStore::rollbackLocked(uint64_t expectedGeneration,
                                                         uint64_t toGeneration, bool dryRun,
                                                         const std::string& reason,
                                                         const std::string& caller,
                                                         const std::string& expectedDigest) {
  // Refusals before the commit step are audited here; commit() audits its own.
  auto refuse = [&](absl::Status st) {
    audit(caller, "rollback", "refused", cur_.generation, cur_.generation, "-", {},
          std::string(st.message()));
    return st;
  };
  if (expectedGeneration == 0 && expectedDigest.empty()) return refuse(checkExpected(0, ""));
  if (toGeneration == 0) {
    for (uint64_t g : history())
      if (g < cur_.generation) toGeneration = g;
    if (toGeneration == 0)
      return refuse(absl::NotFoundError(
          text::cat("no generation before ", cur_.generation, " is kept on disk")));
  }
  if (toGeneration >= cur_.generation)
    return refuse(absl::InvalidArgumentError(
        text::cat("to_generation: ", toGeneration, " is not older than the generation in force (",
                  cur_.generation, ")")));
  auto snap = control::readFile(snapshotPath(state_, toGeneration));
  if (!snap.ok()) return refuse(snap.status());
  if (!*snap)
    return refuse(absl::NotFoundError(text::cat("generation ", toGeneration,
                                                " is no longer kept on disk (the last ",
                                                kKeepGenerations, " are)")));
  auto items = decodeSnapshot(**snap, snapshotPath(state_, toGeneration));
  if (!items.ok()) return refuse(items.status());
  return commit(*items, expectedGeneration, expectedDigest, dryRun, "rollback",
                text::cat("to generation ", toGeneration, reason.empty() ? "" : ": ", reason),
                caller);
}

std::string kindName(ItemKind k) { return kindWord(k); }

}  // namespace qtls::admin
