#include "control/control_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace qtls::control {
namespace {

class ControlFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qtls-control-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& name, const std::string& content) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  std::string dir_;
};

TEST_F(ControlFilesTest, LineStripsTrailingBlanksAndKeepsFirstLineOnly) {
  auto v = readLine(write("me", "mx.example.com \t\r\nsecond\n"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(**v, "mx.example.com");
}

TEST_F(ControlFilesTest, MissingFileIsAbsentNotError) {
  auto v = readLine(dir_ + "/nothing");
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
  auto n = readInt(dir_ + "/nothing", 60);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 60);
}

TEST_F(ControlFilesTest, UnreadableFileIsAnErrorNamingTheFile) {
  // A directory opens but cannot be read: an error, never the default.
  mkdir((dir_ + "/timeoutremote").c_str(), 0755);
  auto n = readInt(dir_ + "/timeoutremote", 1200);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find(dir_ + "/timeoutremote"), std::string::npos);
}

TEST_F(ControlFilesTest, ListSkipsEmptyAndCommentLines) {
  auto v = readList(write("smtproutes", "# comment\n\na:b  \nc:d\n#x:y\n"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(**v, (std::vector<std::string>{"a:b", "c:d"}));
}

TEST_F(ControlFilesTest, IntUsesLeadingDigitsAndKeepsDefaultForText) {
  EXPECT_EQ(*readInt(write("a", "30s\n"), 60), 30);
  EXPECT_EQ(*readInt(write("b", "soon\n"), 60), 60);
  EXPECT_EQ(*readInt(write("c", "\n"), 60), 60);
}

}  // namespace
}  // namespace qtls::control
