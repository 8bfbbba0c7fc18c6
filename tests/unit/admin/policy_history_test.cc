// PolicyStore: what the kept generations may hold (rotated private keys are purged beyond the
// previous generation, and a rollback to such a generation is refused), and writes through
// the symlinks `qtlsctl confine` leaves in control/.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "policy_store_fixture.h"
#include "test_pki.h"

namespace qtls::admin {
namespace {

// Any file in the state directory that holds this text.
std::string stateFileHolding(const std::string& state, const std::string& needle) {
  for (const auto& [path, content] : tree(state))
    if (content.find(needle) != std::string::npos) return path;
  return "";
}

TEST_F(PolicyStoreTest, RotatedKeysArePurgedBeyondThePreviousGeneration) {
  auto store = open();
  const testing::Pem a = testing::selfSigned("a.example");
  const testing::Pem b = testing::selfSigned("b.example");
  const testing::Pem c = testing::selfSigned("c.example");
  ASSERT_TRUE(store->apply(put(1, "clientcert.pem", a.cert + a.key)).ok());  // 2: key A
  ASSERT_TRUE(store->apply(put(2, "clientcert.pem", b.cert + b.key)).ok());  // 3: key B
  // A is the previous key: still there for the rollback after a bad rotation.
  EXPECT_EQ(stateFileHolding(state_, a.key), "generations/2.snap");
  ASSERT_TRUE(store->apply(put(3, "clientcert.pem", c.cert + c.key)).ok());  // 4: key C
  // A is neither in force nor previous: gone from every stored generation.
  EXPECT_EQ(stateFileHolding(state_, a.key), "");
  EXPECT_EQ(stateFileHolding(state_, b.key), "generations/3.snap");
  EXPECT_EQ(slurp(state_ + "/generations/2.purged"), "clientcert.pem\n");
  EXPECT_NE(slurp(state_ + "/audit.log").find("generation=3->4"), std::string::npos);

  auto refused = store->rollback(4, 2, false, "", "test");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            "generation 2 no longer holds its private key (clientcert.pem): a rotated key is "
            "kept for the generation in force and the one before it only; put the certificate "
            "and key you want with an apply instead");
  EXPECT_EQ(store->current().generation, 4u);
  // Back to B (the previous generation) works, and so does back to 1 (no key at all).
  auto back = store->rollback(4, 3, false, "", "test");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(slurp(home_ + "/control/clientcert.pem"), b.cert + b.key);
  ASSERT_TRUE(store->rollback(5, 1, false, "", "test").ok());
  EXPECT_FALSE(fs::exists(home_ + "/control/clientcert.pem"));
}

TEST_F(PolicyStoreTest, AKeyStillInForceIsNotPurged) {
  auto store = open();
  const testing::Pem a = testing::selfSigned("a.example");
  ASSERT_TRUE(store->apply(put(1, "clientcert.pem", a.cert + a.key)).ok());     // 2
  ASSERT_TRUE(store->apply(put(2, "tlspolicy", "example.com verify\n")).ok());  // 3
  ASSERT_TRUE(store->apply(put(3, "tlspolicy", "example.com none\n")).ok());    // 4
  EXPECT_FALSE(fs::exists(state_ + "/generations/2.purged"));
  auto back = store->rollback(4, 2, false, "", "test");
  EXPECT_TRUE(back.ok()) << back.status().message();
}

TEST_F(PolicyStoreTest, WritesGoThroughTheLinksInControl) {
  // The layout `qtlsctl confine` leaves: the policy's names are links into a directory the
  // daemon owns; control/ itself is not written.
  const std::string own = root_ + "/policy";
  fs::create_directories(own + "/notlshosts");
  fs::rename(home_ + "/control/tlspolicy", own + "/tlspolicy");
  fs::create_symlink(own + "/tlspolicy", home_ + "/control/tlspolicy");
  fs::create_symlink("../../policy/notlshosts", home_ + "/control/notlshosts");        // relative
  fs::create_symlink(own + "/tlsclientciphers", home_ + "/control/tlsclientciphers");  // none yet
  write("notlshosts/old.example", "");
  auto store = open();
  ASSERT_EQ(store->current().items.count("notlshosts/old.example"), 1u);
  ChangeRequest r = put(1, "tlspolicy", "example.com verify\n");
  r.put["notlshosts/new.example"] = "";
  r.put["tlsclientciphers"] = "HIGH\n";
  r.remove.push_back("notlshosts/old.example");
  auto done = store->apply(r);
  ASSERT_TRUE(done.ok()) << done.status().message();
  for (const char* name : {"tlspolicy", "notlshosts", "tlsclientciphers"})
    EXPECT_TRUE(fs::is_symlink(home_ + "/control/" + name)) << name;
  EXPECT_EQ(slurp(own + "/tlspolicy"), "example.com verify\n");
  EXPECT_EQ(slurp(own + "/tlsclientciphers"), "HIGH\n");
  EXPECT_TRUE(fs::exists(own + "/notlshosts/new.example"));
  EXPECT_FALSE(fs::exists(own + "/notlshosts/old.example"));
  // Removing a top-level file removes what the link points at; the link stays for next time.
  auto gone = store->apply([&] {
    ChangeRequest x;
    x.expectedGeneration = 2;
    x.remove.push_back("tlsclientciphers");
    x.caller = "test";
    return x;
  }());
  ASSERT_TRUE(gone.ok()) << gone.status().message();
  EXPECT_TRUE(fs::is_symlink(home_ + "/control/tlsclientciphers"));
  EXPECT_FALSE(fs::exists(own + "/tlsclientciphers"));
  // A restart reads the same policy through the links: no hand edit, same generation.
  store.reset();
  EXPECT_EQ(open()->current().generation, 3u);
}

}  // namespace
}  // namespace qtls::admin
