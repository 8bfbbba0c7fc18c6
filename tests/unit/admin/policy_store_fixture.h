// The policy store tests' fixture: a qmail home and a state directory in a fresh temp dir,
// and a store over the remoted schema whose activation the test controls.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "admin/policy_store.h"
#include "remote_config.h"

namespace qtls::admin {

namespace fs = std::filesystem;

// The remote daemon's loader, as qtls-remoted gives it to its store, and an activation that
// calls `activated` (or nothing).
inline std::unique_ptr<PolicyCompiler> remoteCompiler(
    std::function<absl::Status(uint64_t generation)> activated = nullptr) {
  return std::make_unique<TypedCompiler<remoted::RemoteConfig>>(
      remoted::loadRemoteConfig, [activated](uint64_t gen, const std::string&, const Items&,
                                             std::shared_ptr<remoted::RemoteConfig>) {
        return activated ? activated(gen) : absl::OkStatus();
      });
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every file under `dir`, path -> contents: "untouched" means this is equal before and after.
inline std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = slurp(e.path().string());
  return out;
}

class PolicyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qtls-policy-XXXXXX";
    root_ = mkdtemp(tmpl);
    home_ = root_ + "/qmail";
    state_ = root_ + "/state";
    fs::create_directories(home_ + "/control/tlshosts");
    write("me", "mx.example.org\n");
    write("tlspolicy", "example.com encrypt\n");
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(home_ + "/control/" + path).parent_path());
    std::ofstream(home_ + "/control/" + path, std::ios::binary) << content;
  }

  std::unique_ptr<PolicyStore> open() {
    auto s = std::make_unique<PolicyStore>(remotedSchema(), home_, state_,
                                           remoteCompiler([this](uint64_t gen) {
                                             activated_ = gen;
                                             return activateResult_;
                                           }));
    auto st = s->open();
    EXPECT_TRUE(st.ok()) << st.message();
    return s;
  }

  ChangeRequest put(uint64_t expected, const std::string& path, const std::string& content) {
    ChangeRequest r;
    r.expectedGeneration = expected;
    r.put[path] = content;
    r.caller = "test";
    return r;
  }

  std::string root_, home_, state_;
  uint64_t activated_ = 0;
  absl::Status activateResult_ = absl::OkStatus();
};

}  // namespace qtls::admin
