// The whole TLS policy precedence as one exhaustive table, compared with the checked-in
// precedence.ref (the Postfix smtp_tls_policy_test habit). Every combination of target kind,
// tlspolicy entry and qmail policy file is listed there with the level and source it gets.
// To regenerate after an intended change: QTLS_UPDATE_REF=1 ./unit_tests, then review the diff.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

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

TEST(PolicyFiles, GatheredWithStatAndUnsafeNamesIgnored) {
  char tmpl[] = "/tmp/qtls-policy-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  mkdir((dir + "/tlshosts").c_str(), 0755);
  mkdir((dir + "/notlshosts").c_str(), 0755);
  std::ofstream(dir + "/tlshosts/mx.example.com.pem") << "x";
  std::ofstream(dir + "/notlshosts/plain.example.com") << "";
  Inputs a = gatherFiles(dir, "mx.example.com");
  EXPECT_TRUE(a.tlshostsPem);
  EXPECT_FALSE(a.notlshosts);
  EXPECT_TRUE(gatherFiles(dir, "plain.example.com").notlshosts);
  EXPECT_FALSE(gatherFiles(dir, "").targetHasName);
  // "../tlshosts/mx.example.com" would reach the pem file through notlshosts/ if pasted.
  Inputs evil = gatherFiles(dir, "../tlshosts/mx.example.com");
  EXPECT_FALSE(evil.tlshostsPem);
  EXPECT_FALSE(evil.notlshosts);
  std::ofstream(dir + "/tlshosts/exhaustivelist") << "";
  EXPECT_TRUE(gatherFiles(dir, "other.example.com").exhaustiveList);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace qtls::policy
