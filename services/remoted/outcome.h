// qmail-remote's report (spec 1.3, 2.8, 3.7): recipient records (r/h/s) and exactly one final
// K/Z/D record, each ending in NUL. It is made of the failure table's endings only
// (failure_table.h): nothing else writes a letter or a text.
#pragma once

#include <string>
#include <string_view>

#include "report/failure_table.h"

namespace qtls::remoted {

// The failure table's names, as the daemon uses them.
using report::Conn;
using report::Ending;
using report::EndingContext;
using report::Failure;
using report::FailureRow;
using report::failureTable;
using report::judge;
using report::kByCode;
using report::Next;
using report::rowOf;

class Report {
 public:
  // A recipient record (r h s), or the final record (K Z D): the first final stays, later ones
  // change nothing. An ending without a letter writes nothing.
  void add(const Ending& e);

  char finalKind() const { return final_.letter; }
  const std::string& finalText() const { return final_.text; }
  // The final's row: its TLS failure reason ("" when none) and TLS-RPT result type.
  const Ending& final() const { return final_; }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  Ending final_;
};

// What qmail-send will do with these report bytes: qmail-rspawn's translation (spec 1.3),
// 'K' delivered, 'Z' deferred, 'D' bounced.
char qmailVerdict(std::string_view reportBytes);

}  // namespace qtls::remoted
