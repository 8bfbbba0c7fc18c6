// qmail-rspawn's translation of a qmail-remote output read on stdin (spec 1.3, for a child
// that exited 0), written to stdout: the one implementation (shimproto/rspawn_report.h) that
// qtls-rspawn answers qmail-send with, for the integration tests to compare reports with.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "shimproto/rspawn_report.h"

int main() {
  const std::string in((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
  const std::string out = qtls::shimproto::rspawnReport(in);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
