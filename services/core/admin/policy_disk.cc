// The policy store's files: atomic writes, the generation snapshots and their format, the
// control files a policy owns, and the generations kept.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "admin/policy_store.h"
#include "admin/policy_store_internal.h"
#include "control/control_files.h"
#include "log/log.h"
#include "util/netstring.h"
#include "util/text.h"

namespace qtls::admin {
namespace internal {

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

absl::Status writeAtomic(const std::string& path, const std::string& data, mode_t mode,
                         bool syncDir) {
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

std::string throughLink(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 8; ++hops) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    char buf[4096];
    ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
    if (n <= 0) return p;
    std::string to(buf, static_cast<size_t>(n));
    p = to[0] == '/' ? to : dirOf(p) + "/" + to;
  }
  return p;
}

std::string generationPath(const std::string& state, uint64_t gen) {
  return text::cat(state, "/generations/", gen, ".snap");
}

std::string sidecarPath(const std::string& state, uint64_t gen, const char* what) {
  return text::cat(state, "/generations/", gen, ".", what);
}

}  // namespace internal

using namespace internal;
namespace fs = std::filesystem;

// Netstrings, qmail's own framing, after a header line carrying the digest.
std::string encodeGeneration(const Items& items) {
  std::string out = text::cat("qtls-policy-snapshot 1 ", PolicyStore::digestOf(items), "\n");
  for (const auto& [path, content] : items) {
    text::appendNetstring(out, path);
    text::appendNetstring(out, content);
  }
  return out;
}

absl::StatusOr<Items> decodeGeneration(const std::string& data, const std::string& file) {
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

absl::Status PolicyStore::writeControl(const Items& next) const {
  auto disk = readDisk();
  if (!disk.ok()) return disk.status();
  std::set<std::string> dirs;
  bool first = true;
  for (const auto& [path, content] : next) {
    auto it = disk->find(path);
    if (it != disk->end() && it->second == content) continue;
    const std::string full = throughLink(control_ + "/" + path);
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
    const std::string full = throughLink(control_ + "/" + path);
    if (::unlink(full.c_str()) != 0 && errno != ENOENT)
      return absl::InternalError(errnoText("cannot remove", full));
    dirs.insert(dirOf(full));
  }
  for (const std::string& d : dirs)
    if (auto s = fsyncDir(d); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status PolicyStore::persistGeneration(uint64_t gen, const Items& items) {
  if (auto s = writeAtomic(generationPath(state_, gen), encodeGeneration(items), 0600); !s.ok())
    return s;
  if (auto s = writeAtomic(state_ + "/current", text::cat(gen, " ", digestOf(items), "\n"), 0600);
      !s.ok())
    return s;
  // Older generations beyond the ones kept are forgotten.
  std::vector<uint64_t> gens = history();
  for (size_t i = 0; i + kKeepGenerations < gens.size(); ++i) {
    ::unlink(generationPath(state_, gens[i]).c_str());
    ::unlink(sidecarPath(state_, gens[i], "keys").c_str());
    ::unlink(sidecarPath(state_, gens[i], "purged").c_str());
  }
  // The new generation is in force whatever happens here; a purge that failed is retried
  // by the next change.
  if (auto s = purgeRotatedKeys(gen, items); !s.ok())
    log::warn(text::cat("policy: could not purge rotated keys: ", std::string(s.message())));
  return absl::OkStatus();
}

// <N>.keys: "<path> <sha256>" per private-key file of generation N, so that deciding what to
// purge reads a few lines per generation, not whole snapshots. Written on first need.
absl::StatusOr<std::map<std::string, std::string>> PolicyStore::keysOf(uint64_t gen) const {
  std::map<std::string, std::string> keys;
  const std::string file = sidecarPath(state_, gen, "keys");
  auto have = control::readFile(file);
  if (!have.ok()) return have.status();
  if (*have) {
    for (std::string_view line : text::splitAny(**have, "\n")) {
      size_t sp = line.find(' ');
      if (sp != std::string_view::npos)
        keys[std::string(line.substr(0, sp))] = std::string(line.substr(sp + 1));
    }
    return keys;
  }
  auto snap = control::readFile(generationPath(state_, gen));
  if (!snap.ok()) return snap.status();
  if (!*snap) return keys;
  auto items = decodeGeneration(**snap, generationPath(state_, gen));
  if (!items.ok()) return items.status();
  std::string out;
  for (const auto& [path, content] : *items)
    if (secret(path)) {
      keys[path] = sha256Hex(content);
      out += text::cat(path, " ", keys[path], "\n");
    }
  if (auto s = writeAtomic(file, out, 0600, false); !s.ok()) return s;
  return keys;
}

// A private key lives in the generation in force and the one before it (the rollback after a
// bad rotation). Older generations lose every key file that is neither, and name what they
// lost in <N>.purged so that a rollback to them is refused instead of restoring half a policy.
absl::Status PolicyStore::purgeRotatedKeys(uint64_t gen, const Items& items) {
  std::vector<uint64_t> gens = history();
  std::set<std::string> live;  // "<path> <sha256>" of the keys allowed to stay
  for (const auto& [path, content] : items)
    if (secret(path)) live.insert(text::cat(path, " ", sha256Hex(content)));
  uint64_t previous = 0;
  for (uint64_t g : gens)
    if (g < gen) previous = g;
  if (previous != 0) {
    auto prev = keysOf(previous);
    if (!prev.ok()) return prev.status();
    for (const auto& [path, hash] : *prev) live.insert(text::cat(path, " ", hash));
  }
  for (uint64_t g : gens) {
    if (g >= previous) break;
    auto keys = keysOf(g);
    if (!keys.ok()) return keys.status();
    std::vector<std::string> purge;
    for (const auto& [path, hash] : *keys)
      if (!live.count(text::cat(path, " ", hash))) purge.push_back(path);
    if (purge.empty()) continue;
    auto snap = control::readFile(generationPath(state_, g));
    if (!snap.ok()) return snap.status();
    if (!*snap) continue;
    auto old = decodeGeneration(**snap, generationPath(state_, g));
    if (!old.ok()) return old.status();
    std::string names, list;
    for (const std::string& path : purge) {
      old->erase(path);
      names += path + "\n";
      list += (list.empty() ? "" : ",") + path;
    }
    // The mark first: a crash in between leaves a generation that is refused, never one
    // that silently lacks its key.
    if (auto s = writeAtomic(sidecarPath(state_, g, "purged"), names, 0600); !s.ok()) return s;
    if (auto s = writeAtomic(generationPath(state_, g), encodeGeneration(*old), 0600); !s.ok())
      return s;
    std::string rest;
    for (const auto& [path, hash] : *keys)
      if (old->count(path)) rest += text::cat(path, " ", hash, "\n");
    if (auto s = writeAtomic(sidecarPath(state_, g, "keys"), rest, 0600); !s.ok()) return s;
    log::info(text::cat("policy: purged the rotated private key(s) ", list, " from generation ", g,
                        " (keys are kept for the generation in force and the one before)"));
  }
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

}  // namespace qtls::admin
