// SMTP reply parsing, as qmail-remote reads replies: LF-terminated lines, CRs dropped, the
// code of the first line returned, a '-' in the fourth byte meaning "more lines follow".
// Unlike qmail, a code that is not three digits is a protocol error, never a number.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qtls::smtp {

// Up to this many bytes of reply text are kept for "Remote host said:" (qmail's HUGESMTPTEXT).
inline constexpr size_t kMaxKeptReplyText = 5000;
// A reply longer than this is refused as a protocol error (bounds memory per connection).
inline constexpr size_t kMaxReplyBytes = 64 * 1024;

struct Reply {
  int code = 0;      // 100..599
  std::string text;  // every line, CR removed, each ending in '\n'; at most kMaxKeptReplyText
};

// Incremental parser: feed() bytes as they arrive; once done() the reply is complete.
class ReplyParser {
 public:
  enum class State { kNeedMore, kDone, kError };

  // Consumes bytes from `in` up to the end of the reply (never beyond it) and returns how many
  // were consumed. Bytes after the reply are left for the next reply.
  size_t feed(std::string_view in);
  State state() const { return state_; }
  const Reply& reply() const { return reply_; }
  const std::string& error() const { return error_; }

 private:
  void endLine();

  State state_ = State::kNeedMore;
  Reply reply_;
  std::string line_;  // current line, CRs removed
  size_t total_ = 0;
  bool first_ = true;
  std::string error_;
};

// The EHLO keywords of a 250 reply: for each line after the first, the text after the
// four-byte prefix up to a space or tab, with anything from '=' on removed.
std::vector<std::string> ehloKeywords(const Reply& reply);
bool hasKeyword(const std::vector<std::string>& keywords, std::string_view keyword);

}  // namespace qtls::smtp
