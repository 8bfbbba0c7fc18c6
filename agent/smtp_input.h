// What qtls-smtpd parses from the Internet, kept apart from the session so that each piece can
// be fuzzed on its own (tests/fuzz/smtpd_input_fuzz.cc): command-line framing with a length
// bound, the verb/argument split, qmail-smtpd's lenient address parser and the DATA decoder.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace qtls::agent {

// Command lines from a byte stream: up to LF, one trailing CR removed. A line longer than
// `maxLine` is dropped whole (kTooLong once its LF arrives) and never buffered beyond the bound.
class LineReader {
 public:
  explicit LineReader(size_t maxLine) : maxLine_(maxLine) {}
  enum class Result { kLine, kTooLong, kNeedMore };
  Result next(std::string& line);
  void append(std::string_view bytes);
  // Unparsed bytes (DATA reads from here; STARTTLS discards them).
  std::string& buffer() { return in_; }
  // A command line has begun and its LF has not arrived yet.
  bool midLine() const { return !in_.empty() || discarding_; }

 private:
  size_t maxLine_;
  std::string in_;
  bool discarding_ = false;
};

// "MAIL FROM:<a@b>" -> verb "mail" (lowercased), arg "FROM:<a@b>".
void splitCommand(std::string_view line, std::string& verb, std::string_view& arg);

// Address parsing with qmail-smtpd's leniency: text inside <...> (or after ':' up to a space),
// quotes and backslashes removed, a source route "@a,@b:" dropped. `rest` receives what follows
// the address (ESMTP parameters). Returns false for addresses over 900 bytes or with CR, LF or
// NUL.
bool parseAddress(std::string_view arg, std::string& address, std::string& rest);

// The DATA byte machine: CRLF -> LF, leading '.' removed, ends at CRLF.CRLF; counts hops in the
// header and stored bytes. Bare LF is an error, as in qmail-smtpd.
class DataReader {
 public:
  explicit DataReader(size_t limit) : limit_(limit) {}
  enum class State { kMore, kDone, kBareLf };
  // Consumes bytes from `in`; returns how many were used (stops right after the final dot line).
  size_t feed(std::string_view in);
  State state() const { return state_; }
  // The decoded bytes produced so far, handed over and forgotten (streamed to qmail-queue).
  std::string take() { return std::exchange(message_, std::string()); }
  size_t pending() const { return message_.size(); }
  bool overflow() const { return overflow_; }
  int hops() const { return hops_; }

 private:
  void emit(char c);
  State state_ = State::kMore;
  int s_ = 0;  // 0 line start, 1 in line, 2 CR seen, 3 '.' at line start, 4 ".\r"
  size_t limit_;
  size_t bytes_ = 0;
  bool overflow_ = false;
  std::string message_;
  bool inHeader_ = true;
  size_t linePos_ = 0;
  char prefix_[9] = {};
  int hops_ = 0;
};

}  // namespace qtls::agent
