// Inbound parsers: command lines, addresses, DATA.
#include "smtp_input.h"

#include "util/text.h"

namespace qtls::agent {

LineReader::Result LineReader::next(std::string& line) {
  size_t nl = in_.find('\n');
  if (nl == std::string::npos) return Result::kNeedMore;
  if (discarding_ || nl > maxLine_) {
    in_.erase(0, nl + 1);
    discarding_ = false;
    return Result::kTooLong;
  }
  line.assign(in_, 0, nl);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  in_.erase(0, nl + 1);
  return Result::kLine;
}

void LineReader::append(std::string_view bytes) {
  in_.append(bytes);
  // Bounded: the rest of an over-long line is dropped until its LF.
  if (in_.size() > maxLine_ && in_.find('\n') == std::string::npos) {
    discarding_ = true;
    in_.clear();
  }
}

void splitCommand(std::string_view line, std::string& verb, std::string_view& arg) {
  size_t sp = line.find(' ');
  verb = text::lower(line.substr(0, sp));
  arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
}

bool parseAddress(std::string_view arg, std::string& address, std::string& rest) {
  char terminator = '>';
  size_t lt = arg.find('<');
  if (lt != std::string_view::npos) {
    arg.remove_prefix(lt + 1);
  } else {
    terminator = ' ';
    size_t colon = arg.find(':');
    arg.remove_prefix(colon == std::string_view::npos ? arg.size() : colon + 1);
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  }
  if (!arg.empty() && arg.front() == '@') {  // source route
    size_t colon = arg.find(':');
    arg.remove_prefix(colon == std::string_view::npos ? arg.size() : colon + 1);
  }
  address.clear();
  bool esc = false, quoted = false;
  size_t i = 0;
  for (; i < arg.size(); ++i) {
    char c = arg[i];
    if (esc) {
      address.push_back(c);
      esc = false;
      continue;
    }
    if (!quoted && c == terminator) break;
    if (c == '\\')
      esc = true;
    else if (c == '"')
      quoted = !quoted;
    else
      address.push_back(c);
  }
  rest = std::string(i < arg.size() ? arg.substr(i + 1) : std::string_view());
  if (address.size() > 900) return false;
  return address.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
}

void DataReader::emit(char c) {
  ++bytes_;
  if (limit_ != 0 && bytes_ > limit_) overflow_ = true;
  if (!overflow_) message_.push_back(c);
  if (!inHeader_) return;
  if (c == '\n') {
    if (linePos_ == 0) inHeader_ = false;
    linePos_ = 0;
    return;
  }
  if (linePos_ < 9) prefix_[linePos_] = text::lowerChar(c);
  ++linePos_;
  // qmail counts "received" and "delivered" prefixes, with no colon check (so Received-SPF
  // counts too).
  if (linePos_ == 8 && std::string_view(prefix_, 8) == "received") ++hops_;
  if (linePos_ == 9 && std::string_view(prefix_, 9) == "delivered") ++hops_;
}

size_t DataReader::feed(std::string_view in) {
  size_t i = 0;
  while (i < in.size() && state_ == State::kMore) {
    char c = in[i++];
    switch (s_) {
      case 0:  // start of line
        if (c == '.') {
          s_ = 3;
          break;
        }
        [[fallthrough]];
      case 1:  // in a line
        if (c == '\r')
          s_ = 2;
        else if (c == '\n')
          state_ = State::kBareLf;
        else {
          emit(c);
          s_ = 1;
        }
        break;
      case 2:  // CR seen
        if (c == '\n') {
          emit('\n');
          s_ = 0;
        } else {
          emit('\r');  // a CR not followed by LF is kept
          s_ = 1;
          --i;  // look at c again as an ordinary byte
        }
        break;
      case 3:  // '.' at line start
        if (c == '\r')
          s_ = 4;
        else if (c == '\n')
          state_ = State::kBareLf;
        else {
          emit(c);
          s_ = 1;
        }
        break;
      case 4:  // ".\r" at line start
        if (c == '\n') {
          state_ = State::kDone;
        } else {
          s_ = 2;  // the dot was stuffing; the CR is pending
          --i;
        }
        break;
    }
  }
  return i;
}

}  // namespace qtls::agent
