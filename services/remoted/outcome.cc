// qmail-remote's report (outcome.h).
#include "outcome.h"

#include "shimproto/rspawn_report.h"

namespace qtls::remoted {

void Report::add(const Ending& e) {
  if (e.letter == 0) return;
  if (e.final()) {
    if (final_.final()) return;  // exactly one final record
    final_ = e;
  }
  bytes_ += e.record();
}

char qmailVerdict(std::string_view s) { return shimproto::rspawnReport(s)[0]; }

}  // namespace qtls::remoted
