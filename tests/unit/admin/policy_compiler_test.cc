// TypedCompiler through the store: the daemon's activation receives its own configuration
// type, a condition for API changes refuses with the loader's words, and a previewed policy
// becomes the candidate and goes again.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy_store_fixture.h"

namespace qtls::admin {
namespace {

using remoted::RemoteConfig;

class PolicyCompilerTest : public PolicyStoreTest {
 protected:
  std::unique_ptr<PolicyStore> openTyped(TypedCompiler<RemoteConfig>::Check check) {
    auto store =
        std::make_unique<PolicyStore>(remotedSchema(), home_, state_,
                                      std::make_unique<TypedCompiler<RemoteConfig>>(
                                          remoted::loadRemoteConfig,
                                          [this](uint64_t gen, const std::string& digest,
                                                 const Items&, std::shared_ptr<RemoteConfig> cfg) {
                                            return live_.publish(std::move(cfg), gen, digest);
                                          },
                                          std::move(check), &candidate_));
    auto st = store->open();
    EXPECT_TRUE(st.ok()) << st.message();
    return store;
  }

  remoted::ConfigStore live_, candidate_;
};

TEST_F(PolicyCompilerTest, TheActivationReceivesTheDaemonsOwnConfiguration) {
  auto store = openTyped(nullptr);
  ASSERT_NE(live_.current(), nullptr);
  EXPECT_EQ(live_.current()->generation, 1u);
  auto r = store->apply(put(1, "tlspolicy", "example.com verify\n"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(live_.current()->generation, 2u);
  EXPECT_EQ(live_.current()->digest, r->digestAfter);
}

TEST_F(PolicyCompilerTest, AConditionOnApiChangesRefusesThemAndNotHandEdits) {
  auto store = openTyped([](const RemoteConfig&) -> absl::Status {
    return absl::InvalidArgumentError("tlspolicy: refused by the daemon's own condition");
  });
  // The start loaded the files as qmail would: hand edits follow qmail's rules.
  ASSERT_NE(live_.current(), nullptr);
  auto r = store->apply(put(1, "tlspolicy", "example.com verify\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "tlspolicy: refused by the daemon's own condition");
  EXPECT_EQ(live_.current()->generation, 1u);
}

TEST_F(PolicyCompilerTest, APreviewBecomesTheCandidateAndIsWithdrawn) {
  auto store = openTyped(nullptr);
  auto compiled = store->preview({{"tlspolicy", "example.net encrypt\n"}});
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  ASSERT_NE(*compiled, nullptr);
  EXPECT_EQ(candidate_.current(), nullptr);  // a preview alone is in force nowhere
  (*compiled)->offerAsCandidate("sha256:cand");
  ASSERT_NE(candidate_.current(), nullptr);
  EXPECT_EQ(candidate_.current()->digest, "sha256:cand");
  EXPECT_EQ(live_.current()->generation, 1u);  // the policy in force is untouched
  store->withdrawCandidate();
  EXPECT_EQ(candidate_.current(), nullptr);
}

TEST_F(PolicyCompilerTest, WithoutACompilerTheStoreChecksFilesAndActivatesNothing) {
  PolicyStore store(remotedSchema(), home_, state_, nullptr);
  ASSERT_TRUE(store.open().ok());
  auto bad = store.preview({{"tlshosts/a.example.pem", "not a certificate\n"}});
  EXPECT_FALSE(bad.ok());
  auto good = store.preview({{"tlspolicy", "example.net encrypt\n"}});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, nullptr);
  store.withdrawCandidate();  // nothing to withdraw; must not fail
}

}  // namespace
}  // namespace qtls::admin
