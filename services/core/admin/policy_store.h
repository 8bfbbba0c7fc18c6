// The policy a daemon owns, as a versioned set of qmail control files (docs/admin-api.md).
//
// The control directory stays the source of truth. PolicyStore adds what qmail's files lack:
// a generation number and a content digest that survive restarts, compare-and-swap changes
// validated whole before anything is written, a crash-safe multi-file commit, the content of
// earlier generations for rollback, and one audit line per accepted or refused change.
//
// Commit protocol (state directory, mode 0700):
//   1. generations/<new>.snap  the whole new policy, written atomically
//   2. pending                 "<new>": the commit point; from here on the change happens
//   3. control/...             each changed file written to a temp name, fsynced, renamed;
//                              removed files unlinked; directories fsynced
//   4. current                 "<new> <digest>", written atomically
//   5. pending removed
// open() finishes a change whose `pending` exists (roll forward from the snapshot) and forgets
// one that never reached it, so a crash at any point leaves the old or the new policy whole.
// Every atomic write is temp file + fsync + rename + directory fsync.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "admin/policy_compiler.h"

namespace qtls::admin {

// Same numbers as qtls.v1.ItemKind.
enum class ItemKind : int {
  kUnspecified = 0,
  kTlshostCa = 1,
  kTlshostsExhaustive = 2,
  kNotlshost = 3,
  kTlspolicy = 4,
  kClientCert = 5,
  kClientCiphers = 6,
  kServerCert = 20,
  kClientCa = 21,
  kClientCrl = 22,
  kTlsclients = 23,
  kServerCiphers = 24,
  kRelayClients = 25,
  kRcpthosts = 26,
};

enum class Content {
  kAny,         // presence is what counts (notlshosts/<fqdn>, exhaustivelist)
  kText,        // text lines, checked by the whole-policy load
  kCaCerts,     // one or more PEM certificates
  kCrl,         // one or more PEM CRLs
  kCertAndKey,  // PEM certificate(s) with matching private key(s); secret
  kHostList,    // one host name per line (rcpthosts)
};

// One kind of file a daemon owns: either an exact path ("tlspolicy") or a directory and a
// suffix with a host name in between ("tlshosts/" + <fqdn> + ".pem").
struct Rule {
  ItemKind kind;
  std::string path;    // exact path, or the directory prefix ending in '/'
  std::string suffix;  // for directory rules; may be empty
  Content content;
  bool directory() const { return !path.empty() && path.back() == '/'; }
  std::string pattern() const { return directory() ? path + "*" + suffix : path; }
};

// The files a daemon's policy owns.
struct Schema {
  std::string daemon;  // "qtls-remoted"
  std::vector<Rule> rules;
};
Schema remotedSchema();
Schema smtpdSchema();

struct Change {
  enum class Op { kAdded, kRemoved, kModified };
  std::string path;
  Op op;
  ItemKind kind;
  std::string oldSha256, newSha256;
  std::string diff;  // unified diff; empty for secret files
};

struct ChangeRequest {
  uint64_t expectedGeneration = 0;  // 0: any (then expectedDigest is required)
  std::string expectedDigest;       // "": any
  bool dryRun = false;
  Items put;
  std::vector<std::string> remove;
  bool replace = false;
  std::string reason;
  std::string caller;        // for the audit line
  std::string op = "apply";  // the audit line's op= ("rollback" when a fleet target undoes one)
};

struct ChangeResult {
  bool applied = false;
  uint64_t generationBefore = 0, generationAfter = 0;
  std::string digestBefore, digestAfter;
  std::vector<Change> changes;
};

// A policy generation: its number, its content digest and its files.
struct Generation {
  uint64_t generation = 0;
  std::string digest;
  Items items;
};

class PolicyStore {
 public:
  // `compiler` loads each generation with the daemon's own loader and puts it in force; without
  // one (qtlsctl, tests of the files alone) the store checks the files and activates nothing.
  PolicyStore(Schema schema, std::string home, std::string stateDir,
              std::unique_ptr<PolicyCompiler> compiler);
  ~PolicyStore();
  PolicyStore(const PolicyStore&) = delete;
  PolicyStore& operator=(const PolicyStore&) = delete;

  // Called once per audited change: op ("apply", "rollback", "hand-edit", "start") and
  // whether it was applied. Set before open().
  void setObserver(std::function<void(const std::string& op, bool applied)> f) {
    observer_ = std::move(f);
  }

  // Finishes or forgets an interrupted change, reads the persisted generation, turns hand
  // edits made while the daemon was down into a new generation, and activates it.
  absl::Status open();

  // SIGHUP: a hand edit becomes a new generation; unchanged files reload as the same one.
  absl::Status reloadFromDisk(const std::string& caller);
  // reloadFromDisk, leaving its line in the log either way: "reload: <what> loaded,
  // generation N (<caller>)" or "reload: keeping generation N (<caller>): <why>".
  absl::Status reloadLogged(const std::string& caller, const std::string& what);

  Generation current() const;
  const Schema& schema() const { return schema_; }
  std::optional<ItemKind> kindOf(std::string_view path) const;
  bool secret(std::string_view path) const;

  // Codes: INVALID_ARGUMENT (naming the path and the reason), FAILED_PRECONDITION (generation
  // mismatch, naming both), NOT_FOUND (rollback target gone), INTERNAL (disk trouble).
  absl::StatusOr<ChangeResult> apply(const ChangeRequest& req);
  absl::StatusOr<ChangeResult> rollback(uint64_t expectedGeneration, uint64_t toGeneration,
                                        bool dryRun, const std::string& reason,
                                        const std::string& caller,
                                        const std::string& expectedDigest = "");

  // A call refused for want of rights (an unlisted or read-only identity): one audit line,
  // op=<method> result=denied, in the log and <state>/audit.log.
  void auditDenied(const std::string& caller, const std::string& method,
                   const std::string& reason) const;

  // A whole policy judged without applying it (a fleet candidate, evaluated report-only): each
  // file checked as ApplyPolicy checks it, then the whole loaded by the daemon's own loader.
  // Nothing is written, audited or activated. Errors: INVALID_ARGUMENT naming the file.
  // Null without a compiler.
  absl::StatusOr<std::unique_ptr<CompiledPolicy>> preview(const Items& items) const;
  // The fleet's candidate went or cannot be used: the daemon evaluates none.
  void withdrawCandidate();

  // Generations whose content is still on disk, oldest first.
  std::vector<uint64_t> history() const;

  static std::string digestOf(const Items& items);
  static std::string sha256Hex(std::string_view data);
  // Private key blocks removed, for answers that leave the daemon.
  static std::string redactKeys(const std::string& pem, bool* redacted);

  static constexpr size_t kKeepGenerations = 20;
  static constexpr size_t kMaxItemBytes = 1 << 20;
  // The whole policy, paths and contents. A gRPC message carries it whole (GetPolicy,
  // ApplyPolicy --from), so both ends allow kMaxMessageBytes.
  static constexpr size_t kMaxPolicyBytes = 64 << 20;
  static constexpr int kMaxMessageBytes = (64 << 20) + (4 << 20);

 private:
  absl::StatusOr<Items> readDisk() const;
  absl::Status finishInterrupted();  // at open(): roll a committed change forward
  absl::Status validateItem(const std::string& path, const std::string& content) const;
  // What is wrong with a file's content for its kind (a CA bundle without a certificate, a
  // key that matches no certificate...), or "".
  std::string contentProblem(const Rule& rule, const std::string& content) const;
  // The whole candidate, loaded by the daemon's own loader from a private copy of control/.
  absl::StatusOr<std::unique_ptr<CompiledPolicy>> compile(const Items& items, bool viaApi) const;
  absl::StatusOr<ChangeResult> commit(const Items& next, uint64_t expected,
                                      const std::string& expectedDigest, bool dryRun,
                                      const std::string& op, const std::string& reason,
                                      const std::string& caller);
  // The compare-and-swap precondition of a request: which generation or content it was made for.
  absl::Status checkExpected(uint64_t expected, const std::string& expectedDigest) const;
  absl::Status writeControl(const Items& next) const;
  absl::Status persistGeneration(uint64_t gen, const Items& items);
  absl::Status purgeRotatedKeys(uint64_t gen, const Items& items);
  absl::StatusOr<std::map<std::string, std::string>> keysOf(uint64_t gen) const;
  void audit(const std::string& caller, const std::string& op, const std::string& result,
             uint64_t before, uint64_t after, const std::string& digest,
             const std::vector<Change>& changes, const std::string& reason) const;
  std::vector<Change> diff(const Items& from, const Items& to) const;
  absl::StatusOr<ChangeResult> rollbackLocked(uint64_t expectedGeneration, uint64_t toGeneration,
                                              bool dryRun, const std::string& reason,
                                              const std::string& caller,
                                              const std::string& expectedDigest);

  Schema schema_;
  std::string home_, control_, state_;
  std::unique_ptr<PolicyCompiler> compiler_;
  std::function<void(const std::string&, bool)> observer_;
  mutable std::mutex mu_;  // one change at a time; guards cur_
  Generation cur_;
  std::string interrupted_;                  // set when a change failed past its commit point
  mutable std::set<std::string> caChecked_;  // CA bundles (sha256) found valid in this request
  int lockFd_ = -1;  // flock on <state>/lock: one daemon per state directory
};

// "+tlshosts/a.pem,~tlspolicy" for log lines; "none" when empty.
std::string describe(const std::vector<Change>& changes);

// The file format of <state>/generations/<N>.snap (fuzzed: tests/fuzz/admin_fuzz.cc).
std::string encodeGeneration(const Items& items);
absl::StatusOr<Items> decodeGeneration(const std::string& data, const std::string& file);

// "tlshost-ca", "server-cert", ...: a short word for tables.
std::string kindName(ItemKind k);

// Test aid: when the environment variable QTLS_CRASH_POINT equals `point`, the process kills
// itself with SIGKILL, so tests can stop a commit between any two of its steps.
void crashPoint(const char* point);

}  // namespace qtls::admin
