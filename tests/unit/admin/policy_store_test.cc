// PolicyStore: compare-and-swap, dry runs, each kind of invalid input, refused changes leaving
// files and snapshot untouched, rollback, hand edits, and real crashes between commit steps.
#include "admin/policy_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "admin/text_diff.h"
#include "policy_store_fixture.h"
#include "test_pki.h"

namespace qtls::admin {
namespace {

TEST_F(PolicyStoreTest, FirstStartIsGenerationOneAndPersisted) {
  auto store = open();
  Generation s = store->current();
  EXPECT_EQ(s.generation, 1u);
  EXPECT_EQ(activated_, 1u);
  ASSERT_EQ(s.items.size(), 1u);  // "me" is not policy
  EXPECT_EQ(s.items.at("tlspolicy"), "example.com encrypt\n");
  EXPECT_EQ(s.digest, PolicyStore::digestOf(s.items));
  EXPECT_EQ(slurp(state_ + "/current"), "1 " + s.digest + "\n");
  // A restart with the same files is the same generation.
  store.reset();
  EXPECT_EQ(open()->current().generation, 1u);
}

TEST_F(PolicyStoreTest, ApplyWritesFilesAndBumpsGeneration) {
  auto store = open();
  auto r = store->apply(put(1, "notlshosts/legacy.example.net", ""));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->applied);
  EXPECT_EQ(r->generationBefore, 1u);
  EXPECT_EQ(r->generationAfter, 2u);
  EXPECT_EQ(activated_, 2u);
  EXPECT_TRUE(fs::exists(home_ + "/control/notlshosts/legacy.example.net"));
  EXPECT_FALSE(fs::exists(state_ + "/pending"));
  EXPECT_EQ(store->current().generation, 2u);
  // The generation survives a restart.
  store.reset();
  EXPECT_EQ(open()->current().generation, 2u);
}

TEST_F(PolicyStoreTest, CompareAndSwapRefusesAStaleGeneration) {
  auto store = open();
  ASSERT_TRUE(store->apply(put(1, "tlspolicy", "example.com verify\n")).ok());
  const auto before = tree(root_);
  auto r = store->apply(put(1, "tlspolicy", "example.com none\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(r.status().message().find("expected generation 1 but generation 2 is in force"),
            std::string::npos)
      << r.status().message();
  auto after = tree(root_);
  after.erase("state/audit.log");
  auto b = before;
  b.erase("state/audit.log");
  EXPECT_EQ(after, b);
  EXPECT_EQ(store->current().generation, 2u);
  EXPECT_EQ(store->current().items.at("tlspolicy"), "example.com verify\n");
}

TEST_F(PolicyStoreTest, CompareAndSwapOnContentDigest) {
  auto store = open();
  const std::string d1 = store->current().digest;
  ChangeRequest r = put(0, "tlspolicy", "example.com verify\n");
  r.expectedDigest = "sha256:0000";
  auto refused = store->apply(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(refused.status().message().find("content conflict: the change expected sha256:0000 "
                                            "but generation 1 in force is " +
                                            d1),
            std::string::npos)
      << refused.status().message();
  // The digest alone is enough (fleet nodes' generation numbers differ).
  r.expectedDigest = d1;
  auto ok = store->apply(r);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->generationAfter, 2u);
  // Both given: both must match.
  ChangeRequest both = put(2, "tlspolicy", "example.com none\n");
  both.expectedDigest = d1;
  EXPECT_EQ(store->apply(both).status().code(), absl::StatusCode::kAborted);
  // Neither: refused.
  EXPECT_EQ(store->apply(put(0, "tlspolicy", "x none\n")).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Rollback by digest.
  auto back = store->rollback(0, 0, false, "", "test", store->current().digest);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(store->current().items.at("tlspolicy"), "example.com encrypt\n");
}

TEST_F(PolicyStoreTest, AppliedOnlyOnceServing) {
  auto store = open();
  activateResult_ = absl::UnavailableError("disk gone");
  auto r = store->apply(put(1, "tlspolicy", "example.com verify\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("generation 2 was written but could not be loaded: disk "
                                      "gone; the daemon still serves generation 1"),
            std::string::npos)
      << r.status().message();
  // The files are generation 2 and nothing else may change until a restart loads them.
  EXPECT_EQ(store->current().generation, 2u);
  activateResult_ = absl::OkStatus();
  EXPECT_EQ(store->apply(put(2, "tlspolicy", "example.com none\n")).status().code(),
            absl::StatusCode::kUnavailable);
  store.reset();
  auto again = open();
  EXPECT_EQ(again->current().generation, 2u);
  EXPECT_EQ(activated_, 2u);
  EXPECT_TRUE(again->apply(put(2, "tlspolicy", "example.com none\n")).ok());
}

TEST_F(PolicyStoreTest, DryRunReturnsTheDiffAndChangesNothing) {
  auto store = open();
  auto before = tree(root_);
  ChangeRequest req = put(1, "tlspolicy", "example.com verify\n");
  req.dryRun = true;
  auto r = store->apply(req);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->applied);
  EXPECT_EQ(r->generationAfter, 1u);
  ASSERT_EQ(r->changes.size(), 1u);
  EXPECT_EQ(r->changes[0].op, Change::Op::kModified);
  EXPECT_EQ(r->changes[0].diff,
            "--- a/tlspolicy\n+++ b/tlspolicy\n@@ -1,1 +1,1 @@\n-example.com encrypt\n"
            "+example.com verify\n");
  EXPECT_NE(r->digestAfter, r->digestBefore);
  auto after = tree(root_);
  before.erase("state/audit.log");
  after.erase("state/audit.log");
  EXPECT_EQ(after, before);
  EXPECT_EQ(store->current().generation, 1u);
}

struct Bad {
  const char* name;
  std::string path, content, wantInMessage;
};

TEST_F(PolicyStoreTest, InvalidChangesAreRefusedWholeNamingPathAndReason) {
  auto store = open();
  const testing::Pem a = testing::selfSigned("a.example"), b = testing::selfSigned("b.example");
  const std::vector<Bad> cases = {
      {"dotdot", "tlshosts/../../etc/x.pem", "", "\"..\""},
      {"absolute", "/etc/passwd", "", "absolute paths are refused"},
      {"nul", std::string("tlshosts/a\0b.pem", 16), "", "NUL"},
      {"slash in name", "tlshosts/a/b.pem", a.cert, "not a file qtls-remoted policy owns"},
      {"not owned", "me", "x\n", "not a file qtls-remoted policy owns"},
      {"bad host name", "notlshosts/bad name", "", "not a valid host name"},
      {"empty component", "tlshosts//x.pem", a.cert, "empty path components"},
      {"ca not pem", "tlshosts/mx.example.com.pem", "hello\n", "no PEM certificate"},
      {"client cert without key", "clientcert.pem", a.cert, "no private key"},
      {"key of another cert", "clientcert.pem", a.cert + b.key, "does not match"},
      {"tlspolicy syntax", "tlspolicy", "example.com sometimes\n", "tlspolicy"},
      {"ciphers", "tlsclientciphers", "NOT-A-CIPHER\n", "tlsclientciphers"},
  };
  for (const Bad& c : cases) {
    auto before = tree(root_ + "/qmail");
    auto r = store->apply(put(1, c.path, c.content));
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(r.status().message().find(c.wantInMessage), std::string::npos)
        << c.name << ": " << r.status().message();
    EXPECT_EQ(tree(root_ + "/qmail"), before) << c.name;
    EXPECT_EQ(store->current().generation, 1u) << c.name;
    EXPECT_FALSE(fs::exists(root_ + "/etc")) << c.name;
  }
  ChangeRequest none;
  none.remove = {"notlshosts/never.example"};
  none.expectedGeneration = 1;
  auto r = store->apply(none);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no such file in generation 1"), std::string::npos);
  none.expectedGeneration = 0;
  EXPECT_EQ(store->apply(none).status().code(), absl::StatusCode::kInvalidArgument);
  // Every refusal is audited.
  std::string audit = slurp(state_ + "/audit.log");
  EXPECT_NE(audit.find("result=refused"), std::string::npos);
}

TEST_F(PolicyStoreTest, ValidCertificateAndKeyAreAcceptedAndNeverShownInDiffs) {
  auto store = open();
  const testing::Pem a = testing::selfSigned("client.example");
  auto r = store->apply(put(1, "clientcert.pem", a.cert + a.key));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->changes.size(), 1u);
  EXPECT_EQ(r->changes[0].diff, "");
  struct stat st;
  ASSERT_EQ(stat((home_ + "/control/clientcert.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  bool redacted = false;
  std::string shown = PolicyStore::redactKeys(a.cert + a.key, &redacted);
  EXPECT_TRUE(redacted);
  EXPECT_EQ(shown, a.cert);
  EXPECT_EQ(slurp(state_ + "/audit.log").find("PRIVATE"), std::string::npos);
}

TEST_F(PolicyStoreTest, ReplaceMakesTheRequestTheWholePolicy) {
  write("notlshosts/old.example", "");
  auto store = open();
  ChangeRequest req = put(1, "tlspolicy", "example.com may\n");
  req.replace = true;
  auto r = store->apply(req);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(fs::exists(home_ + "/control/notlshosts/old.example"));
  EXPECT_EQ(store->current().items.size(), 1u);
}

TEST_F(PolicyStoreTest, RollbackRestoresThePreviousGenerationAsANewOne) {
  auto store = open();
  ASSERT_TRUE(store->apply(put(1, "tlspolicy", "example.com verify\n")).ok());
  auto r = store->rollback(2, 0, false, "bad idea", "test");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->generationAfter, 3u);
  EXPECT_EQ(slurp(home_ + "/control/tlspolicy"), "example.com encrypt\n");
  EXPECT_EQ(store->current().digest, r->digestAfter);
  // Rolling back needs the right generation too.
  EXPECT_EQ(store->rollback(2, 0, false, "", "test").status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store->rollback(3, 99, false, "", "test").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->history(), (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(PolicyStoreTest, HandEditsBecomeAGenerationAndBadOnesAreRefused) {
  auto store = open();
  write("notlshosts/hand.example", "");
  ASSERT_TRUE(store->reloadFromDisk("SIGHUP").ok());
  EXPECT_EQ(store->current().generation, 2u);
  // Nothing changed: same generation, but the daemon still reloads the other files.
  activated_ = 0;
  ASSERT_TRUE(store->reloadFromDisk("SIGHUP").ok());
  EXPECT_EQ(store->current().generation, 2u);
  EXPECT_EQ(activated_, 2u);
  // The daemon refuses to load an edit: the generation in force stays.
  write("tlspolicy", "broken\n");
  activateResult_ = absl::InvalidArgumentError("tlspolicy line 1: bad");
  EXPECT_FALSE(store->reloadFromDisk("SIGHUP").ok());
  EXPECT_EQ(store->current().generation, 2u);
  // Edits made while the daemon was down count at the next start.
  activateResult_ = absl::OkStatus();
  write("tlspolicy", "example.com may\n");
  store.reset();
  EXPECT_EQ(open()->current().generation, 3u);
}

// A real crash (SIGKILL) between each pair of commit steps, in a child process; a fresh store
// must then see the old or the new policy whole, and the control files must match it.
TEST_F(PolicyStoreTest, CrashAtAnyStepLeavesOldOrNewPolicyWhole) {
  struct Point {
    const char* name;
    bool newWins;
  };
  for (const Point& p : {Point{"snapshot-written", false}, Point{"pending-written", true},
                         Point{"control-partial", true}, Point{"control-written", true},
                         Point{"current-written", true}}) {
    fs::remove_all(state_);
    fs::remove_all(home_ + "/control");
    write("me", "mx.example.org\n");
    write("tlspolicy", "example.com encrypt\n");
    write("notlshosts/a.example", "");
    {
      auto store = open();
      ASSERT_EQ(store->current().generation, 1u);
    }
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setenv("QTLS_CRASH_POINT", p.name, 1);
      auto store = std::make_unique<PolicyStore>(remotedSchema(), home_, state_, remoteCompiler());
      if (!store->open().ok()) _exit(3);
      ChangeRequest r;
      r.expectedGeneration = 1;
      r.put["tlspolicy"] = "example.com verify\n";
      r.put["notlshosts/b.example"] = "";
      r.remove = {"notlshosts/a.example"};
      (void)store->apply(r);
      _exit(4);  // not reached when the crash point fires
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << p.name << " status " << status;
    ASSERT_EQ(WTERMSIG(status), SIGKILL) << p.name;

    auto store = open();
    Generation s = store->current();
    const bool isNew = s.items.count("notlshosts/b.example") > 0;
    EXPECT_EQ(isNew, p.newWins) << p.name;
    EXPECT_EQ(s.generation, isNew ? 2u : 1u) << p.name;
    EXPECT_EQ(slurp(home_ + "/control/tlspolicy"),
              isNew ? "example.com verify\n" : "example.com encrypt\n")
        << p.name;
    EXPECT_EQ(fs::exists(home_ + "/control/notlshosts/a.example"), !isNew) << p.name;
    EXPECT_EQ(fs::exists(home_ + "/control/notlshosts/b.example"), isNew) << p.name;
    EXPECT_FALSE(fs::exists(state_ + "/pending")) << p.name;
    EXPECT_EQ(s.digest, PolicyStore::digestOf(s.items)) << p.name;
    // And the next change continues the history from there.
    EXPECT_TRUE(store->apply(put(s.generation, "tlspolicy", "example.com may\n")).ok()) << p.name;
  }
}

TEST_F(PolicyStoreTest, AHandEditNotYetReloadedIsNeverOverwritten) {
  auto store = open();
  write("notlshosts/hand.example", "");  // no SIGHUP yet
  auto r = store->apply(put(1, "tlspolicy", "example.com verify\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("edited by hand since generation 1 was loaded "
                                      "(+notlshosts/hand.example); send SIGHUP"),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(fs::exists(home_ + "/control/notlshosts/hand.example"));
  EXPECT_EQ(slurp(home_ + "/control/tlspolicy"), "example.com encrypt\n");
}

TEST_F(PolicyStoreTest, PrivateKeysOnlyInTheFilesMeantForThem) {
  auto store = open();
  const testing::Pem a = testing::selfSigned("ca.example");
  auto r = store->apply(put(1, "tlshosts/mx.example.com.pem", a.cert + a.key));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("holds a private key"), std::string::npos);
}

// Debian's qmail has /var/qmail/control -> /etc/qmail: validating a change (dry run or
// refused) must not write through the link into the live directory.
TEST_F(PolicyStoreTest, SymlinkedControlDirectoryIsNeverWrittenByAValidation) {
  fs::rename(home_ + "/control", root_ + "/etc-qmail");
  fs::create_directory_symlink(root_ + "/etc-qmail", home_ + "/control");
  auto store = open();
  auto before = tree(root_ + "/etc-qmail");
  ChangeRequest dry = put(1, "tlspolicy", "example.com verify\n");
  dry.put["notlshosts/x.example"] = "";
  dry.dryRun = true;
  ASSERT_TRUE(store->apply(dry).ok());
  ChangeRequest bad = put(1, "tlspolicy", "example.com sometimes\n");
  EXPECT_FALSE(store->apply(bad).ok());
  EXPECT_EQ(tree(root_ + "/etc-qmail"), before);
  EXPECT_TRUE(fs::is_symlink(home_ + "/control"));
  // A real change goes through the link, as qmail's own files do.
  ASSERT_TRUE(store->apply(put(1, "tlspolicy", "example.com verify\n")).ok());
  EXPECT_EQ(slurp(root_ + "/etc-qmail/tlspolicy"), "example.com verify\n");
}

TEST(TextDiffTest, HunksWithContext) {
  std::string a, b;
  for (int i = 1; i <= 20; ++i) a += "line" + std::to_string(i) + "\n";
  b = a;
  b.replace(b.find("line2\n"), 6, "LINE2\n");
  b += "line21\n";
  EXPECT_EQ(unifiedDiff(a, b, "f"),
            "--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n line1\n-line2\n+LINE2\n line3\n line4\n line5\n"
            "@@ -18,3 +18,4 @@\n line18\n line19\n line20\n+line21\n");
  EXPECT_EQ(unifiedDiff(a, a, "f"), "");
  EXPECT_EQ(unifiedDiff("", "x", "f"),
            "--- a/f\n+++ b/f\n@@ -0,0 +1,1 @@\n+x\n\\ No newline at end of file\n");
}

}  // namespace
}  // namespace qtls::admin
