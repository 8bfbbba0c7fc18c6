// The whole TLS policy precedence as one exhaustive table, compared with the checked-in
// precedence.ref (the Postfix smtp_tls_policy_test habit). Every combination of target kind,
// tlspolicy entry and qmail policy file is listed there with the level and source it gets.
// To regenerate after an intended change: QTLS_UPDATE_REF=1 ./unit_tests, then review the diff.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "policy/qmail_files.h"
#include "policy/resolve.h"

namespace qtls::policy {
namespace {

std::string table() {
  std::ostringstream out;
  out << "# name table         pem exh notls -> level source\n";
  const char* tableNames[] = {"-", "none", "may", "encrypt", "verify", "fingerprint"};
  for (bool hasName : {true, false})
    for (int t = 0; t < 6; ++t)
      for (bool pem : {false, true})
        for (bool exh : {false, true})
          for (bool notls : {false, true}) {
            TableEntry entry;
            Inputs in;
            in.targetHasName = hasName;
            if (t > 0) {
              entry.level = *parseLevel(tableNames[t]);
              in.table = &entry;
            }
            in.tlshostsPem = pem;
            in.exhaustiveList = exh;
            in.notlshosts = notls;
            Decision d = decide(in);
            char line[160];
            std::snprintf(line, sizeof line, "%-6s %-13s %-3s %-3s %-5s -> %-11s %s\n",
                          hasName ? "fqdn" : "ip", tableNames[t], pem ? "yes" : "no",
                          exh ? "yes" : "no", notls ? "yes" : "no",
                          std::string(levelName(d.level)).c_str(),
                          std::string(sourceName(d.source)).c_str());
            out << line;
          }
  return out.str();
}

TEST(PolicyPrecedence, ExhaustiveTableMatchesReference) {
  const std::string ref = std::string(QTLS_TEST_SOURCE_DIR) + "/unit/policy/precedence.ref";
  if (std::getenv("QTLS_UPDATE_REF")) std::ofstream(ref) << table();
  std::ifstream in(ref);
  ASSERT_TRUE(in) << "missing " << ref;
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(table(), want.str());
}

TEST(PolicyFiles, ReadOnceIntoTheSnapshotAndUnsafeNamesIgnored) {
  char tmpl[] = "/tmp/qtls-policy-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  mkdir((dir + "/tlshosts").c_str(), 0755);
  mkdir((dir + "/notlshosts").c_str(), 0755);
  std::ofstream(dir + "/tlshosts/mx.example.com.pem") << "x";
  std::ofstream(dir + "/tlshosts/README") << "not a policy file";
  std::ofstream(dir + "/notlshosts/plain.example.com") << "";
  auto files = QmailFiles::read(dir);
  ASSERT_TRUE(files.ok()) << files.status();
  Inputs a = files->inputs("mx.example.com");
  EXPECT_TRUE(a.tlshostsPem);
  EXPECT_FALSE(a.notlshosts);
  EXPECT_EQ(files->pem("mx.example.com")->content, "x");
  EXPECT_EQ(files->tlshosts.size(), 1u);
  EXPECT_TRUE(files->inputs("plain.example.com").notlshosts);
  EXPECT_FALSE(files->inputs("").targetHasName);
  // "../tlshosts/mx.example.com" would reach the pem file through notlshosts/ if pasted.
  Inputs evil = files->inputs("../tlshosts/mx.example.com");
  EXPECT_FALSE(evil.tlshostsPem);
  EXPECT_FALSE(evil.notlshosts);
  EXPECT_FALSE(files->exhaustiveList);
  // A file created afterwards changes nothing until the next snapshot is read.
  std::ofstream(dir + "/tlshosts/exhaustivelist") << "";
  std::ofstream(dir + "/notlshosts/late.example.com") << "";
  EXPECT_FALSE(files->inputs("other.example.com").exhaustiveList);
  EXPECT_FALSE(files->inputs("late.example.com").notlshosts);
  auto next = QmailFiles::read(dir);
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->inputs("other.example.com").exhaustiveList);
  EXPECT_TRUE(next->inputs("late.example.com").notlshosts);
  // Missing directories are empty, not errors.
  auto none = QmailFiles::read(dir + "/nonexistent");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->tlshosts.empty());
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace qtls::policy
