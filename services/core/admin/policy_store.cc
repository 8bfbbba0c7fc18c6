// PolicyStore: opening (recovery, hand edits), the crash-safe commit, rollback, compare-and-
// swap and the audit line. The files are in policy_disk.cc, the checks in policy_validate.cc.
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

#include "admin/policy_store_internal.h"
#include "admin/text_diff.h"
#include "control/control_files.h"
#include "log/log.h"
#include "util/host_name.h"
#include "util/netstring.h"
#include "util/sha256.h"
#include "util/text.h"

namespace qtls::admin {

using namespace internal;
namespace fs = std::filesystem;

namespace {

// Puts a compiled generation in force; a store without a compiler has nothing to activate.
absl::Status activate(CompiledPolicy* compiled, uint64_t gen, const std::string& digest,
                      const Items& items) {
  return compiled ? compiled->activate(gen, digest, items) : absl::OkStatus();
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

PolicyStore::PolicyStore(Schema schema, std::string home, std::string stateDir,
                         std::unique_ptr<PolicyCompiler> compiler)
    : schema_(std::move(schema)),
      home_(std::move(home)),
      control_(home_ + "/control"),
      state_(std::move(stateDir)),
      compiler_(std::move(compiler)) {}

PolicyStore::~PolicyStore() {
  if (lockFd_ >= 0) ::close(lockFd_);  // releases the flock
}

std::string PolicyStore::sha256Hex(std::string_view data) { return text::sha256Hex(data); }

std::string PolicyStore::digestOf(const Items& items) {
  std::string all;
  for (const auto& [path, content] : items) {
    text::appendNetstring(all, path);
    text::appendNetstring(all, content);
  }
  return "sha256:" + sha256Hex(all);
}

// A change that reached its commit point (state/pending) before a crash: its files written
// and its generation made the one in force.
absl::Status PolicyStore::finishInterrupted() {
  auto pending = control::readLine(state_ + "/pending");
  if (!pending.ok()) return pending.status();
  if (!*pending) return absl::OkStatus();
  const uint64_t gen = std::strtoull((*pending)->c_str(), nullptr, 10);
  auto snap = control::readFile(generationPath(state_, gen));
  if (!snap.ok()) return snap.status();
  if (!*snap)
    return absl::DataLossError(
        text::cat(state_, "/pending names generation ", gen, " but its snapshot is missing"));
  auto items = decodeGeneration(**snap, generationPath(state_, gen));
  if (!items.ok()) return items.status();
  if (auto s = writeControl(*items); !s.ok()) return s;
  if (auto s = writeAtomic(state_ + "/current", text::cat(gen, " ", digestOf(*items), "\n"), 0600);
      !s.ok())
    return s;
  ::unlink((state_ + "/pending").c_str());
  if (auto s = fsyncDir(state_); !s.ok()) return s;
  log::warn(text::cat("policy: finished the change to generation ", gen,
                      " that was interrupted by a crash"));
  return absl::OkStatus();
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

  // AT_EACCESS: the effective user's access. At start-up as root the store is opened as the
  // service user by seteuid alone (daemon/privileges.h); access() would ask about root.
  if (::geteuid() != 0 && ::faccessat(AT_FDCWD, control_.c_str(), W_OK, AT_EACCESS) == 0)
    log::warn(text::cat("policy: ", control_,
                        " is writable by this daemon's user, so a bug in it could create any "
                        "qmail control file (rcpthosts, smtproutes, locals); make control/ "
                        "root's and run `qtlsctl confine` (docs/operations.md)"));

  // 1. Finish a change that reached its commit point.
  if (auto s = finishInterrupted(); !s.ok()) return s;

  // 2. The generation in force, and hand edits made while the daemon was down.
  auto current = control::readLine(state_ + "/current");
  if (!current.ok()) return current.status();
  auto disk = readDisk();
  if (!disk.ok()) return disk.status();
  const std::string digest = digestOf(*disk);
  auto compiled = compile(*disk, false);  // before any bookkeeping: a bad start changes nothing
  if (!compiled.ok()) return compiled.status();
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
      if (auto snap = control::readFile(generationPath(state_, gen)); snap.ok() && *snap)
        if (auto items = decodeGeneration(**snap, generationPath(state_, gen)); items.ok())
          before = std::move(*items);
      ++gen;
      if (auto s = persistGeneration(gen, *disk); !s.ok()) return s;
      audit("start", "hand-edit", "applied", gen - 1, gen, digest, diff(before, *disk),
            "control files changed while the daemon was down");
    }
  }
  if (auto s = activate(compiled->get(), gen, digest, *disk); !s.ok()) return s;
  cur_ = Generation{gen, digest, std::move(*disk)};
  return absl::OkStatus();
}

absl::Status PolicyStore::reloadFromDisk(const std::string& caller) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!interrupted_.empty()) return absl::UnavailableError(interrupted_);
  auto disk = readDisk();
  if (!disk.ok()) return disk.status();
  const std::string digest = digestOf(*disk);
  auto compiled = compile(*disk, false);
  if (digest == cur_.digest)  // only files outside the policy (smtproutes, me) changed
    return compiled.ok() ? activate(compiled->get(), cur_.generation, digest, *disk)
                         : compiled.status();
  const uint64_t gen = cur_.generation + 1;
  std::vector<Change> changes = diff(cur_.items, *disk);
  absl::Status s =
      compiled.ok() ? activate(compiled->get(), gen, digest, *disk) : compiled.status();
  if (!s.ok()) {
    audit(caller, "hand-edit", "refused", cur_.generation, cur_.generation, digest, changes,
          std::string(s.message()));
    return s;
  }
  if (auto s = persistGeneration(gen, *disk); !s.ok())
    log::error(text::cat("policy: generation ", gen,
                         " is in force but not persisted: ", std::string(s.message())));
  audit(caller, "hand-edit", "applied", cur_.generation, gen, digest, changes, "");
  cur_ = Generation{gen, digest, std::move(*disk)};
  return absl::OkStatus();
}

absl::Status PolicyStore::reloadLogged(const std::string& caller, const std::string& what) {
  absl::Status s = reloadFromDisk(caller);
  const uint64_t gen = current().generation;
  if (s.ok())
    log::info(text::cat("reload: ", what, " loaded, generation ", gen, " (", caller, ")"));
  else
    log::error(text::cat("reload: keeping generation ", gen, " (", caller,
                         "): ", std::string(s.message())));
  return s;
}

Generation PolicyStore::current() const {
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
  if (observer_ && result != "denied") observer_(op, result == "applied");  // changes only
  // The same line, kept with the state: a record that outlives log rotation.
  int fd = ::open((state_ + "/audit.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const std::string l = line + "\n";
    if (::write(fd, l.data(), l.size()) < 0) {
    }
    ::close(fd);
  }
}

void PolicyStore::auditDenied(const std::string& caller, const std::string& method,
                              const std::string& reason) const {
  const Generation now = current();
  audit(caller, method, "denied", now.generation, now.generation, now.digest, {}, reason);
}

absl::Status PolicyStore::checkExpected(uint64_t expected,
                                        const std::string& expectedDigest) const {
  if (expected == 0 && expectedDigest.empty())
    return absl::InvalidArgumentError(
        "expected_generation: required (or expected_digest); read them with GetPolicy");
  if (expected != 0 && expected != cur_.generation)
    return absl::AbortedError(text::cat(
        "generation conflict: the change expected generation ", expected, " but generation ",
        cur_.generation, " is in force; read the policy again and reapply the change to it"));
  if (!expectedDigest.empty() && expectedDigest != cur_.digest)
    return absl::AbortedError(text::cat("content conflict: the change expected ", expectedDigest,
                                        " but generation ", cur_.generation, " in force is ",
                                        cur_.digest,
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
  // Compiled now, served as is after the commit: what was checked is what runs.
  auto compiled = compile(next, true);
  if (!compiled.ok()) {
    audit(caller, op, "refused", cur_.generation, cur_.generation, r.digestAfter, r.changes,
          std::string(compiled.status().message()));
    return compiled.status();
  }
  if (dryRun || r.changes.empty()) return r;

  // Before the commit point: can every directory the change touches be written?
  for (const Change& c : r.changes) {
    std::string dir = dirOf(throughLink(control_ + "/" + c.path));
    if (::access(dir.c_str(), F_OK) != 0) dir = control_;
    if (::access(dir.c_str(), W_OK) != 0) {
      auto s = absl::FailedPreconditionError(text::cat(
          "cannot write ", dir, ": ", std::strerror(errno),
          "; the daemon's user must be able to write the files its policy owns: run `qtlsctl "
          "confine` once as root to move them into a directory it owns (docs/operations.md)"));
      audit(caller, op, "refused", cur_.generation, cur_.generation, r.digestAfter, r.changes,
            std::string(s.message()));
      return s;
    }
  }
  const uint64_t gen = cur_.generation + 1;
  if (auto s = writeAtomic(generationPath(state_, gen), encodeGeneration(next), 0600); !s.ok())
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

  cur_ = Generation{gen, r.digestAfter, next};
  // Applied means serving. The loader accepted this content on a private copy, so only the
  // machine can fail it here (disk, permissions): the files are generation `gen`, the daemon
  // still serves the one before, and nothing else changes until a restart loads `gen`.
  if (auto s = activate(compiled->get(), gen, r.digestAfter, next); !s.ok())
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

void PolicyStore::withdrawCandidate() {
  if (compiler_) compiler_->withdrawCandidate();
}

absl::StatusOr<std::unique_ptr<CompiledPolicy>> PolicyStore::preview(const Items& items) const {
  std::lock_guard<std::mutex> lock(mu_);  // compile() uses the one private copy
  caChecked_.clear();
  size_t total = 0;
  for (const auto& [path, content] : items) {
    if (auto s = validateItem(path, content); !s.ok()) return s;
    total += path.size() + content.size();
  }
  if (total > kMaxPolicyBytes)
    return absl::InvalidArgumentError(
        text::cat("the policy is ", total, " bytes; the limit is ", kMaxPolicyBytes));
  return compile(items, true);
}

absl::StatusOr<ChangeResult> PolicyStore::apply(const ChangeRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  auto refuse = [&](absl::Status s) {
    audit(req.caller, req.op, "refused", cur_.generation, cur_.generation, "-", {},
          std::string(s.message()));
    return s;
  };
  if (req.expectedGeneration == 0 && req.expectedDigest.empty())
    return refuse(checkExpected(0, ""));
  Items next = req.replace ? Items{} : cur_.items;
  caChecked_.clear();
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
  size_t total = 0;
  for (const auto& [path, content] : next) total += path.size() + content.size();
  if (total > kMaxPolicyBytes)
    return refuse(absl::InvalidArgumentError(
        text::cat("the policy would be ", total, " bytes; the limit is ", kMaxPolicyBytes,
                  " (many tlshosts/ files with the same CA bundle: name it once with ca= in "
                  "tlspolicy instead)")));
  return commit(next, req.expectedGeneration, req.expectedDigest, req.dryRun, req.op, req.reason,
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
  auto snap = control::readFile(generationPath(state_, toGeneration));
  if (!snap.ok()) return refuse(snap.status());
  if (!*snap)
    return refuse(absl::NotFoundError(text::cat("generation ", toGeneration,
                                                " is no longer kept on disk (the last ",
                                                kKeepGenerations, " are)")));
  auto items = decodeGeneration(**snap, generationPath(state_, toGeneration));
  if (!items.ok()) return refuse(items.status());
  auto purged = control::readFile(sidecarPath(state_, toGeneration, "purged"));
  if (!purged.ok()) return refuse(purged.status());
  if (*purged) {
    std::string names = **purged;
    while (!names.empty() && names.back() == '\n') names.pop_back();
    std::replace(names.begin(), names.end(), '\n', ',');
    return refuse(absl::FailedPreconditionError(text::cat(
        "generation ", toGeneration, " no longer holds its private key (", names,
        "): a rotated key is kept for the generation in force and the one before it only; "
        "put the certificate and key you want with an apply instead")));
  }
  return commit(*items, expectedGeneration, expectedDigest, dryRun, "rollback",
                text::cat("to generation ", toGeneration, reason.empty() ? "" : ": ", reason),
                caller);
}

}  // namespace qtls::admin
