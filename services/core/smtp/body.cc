// DATA encoding: LF to CRLF, dot-stuffing, partial-final-line detection.
#include "smtp/body.h"

namespace qtls::smtp {

void BodyEncoder::feed(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size() + in.size() / 32 + 8);
  for (char c : in) {
    if (atLineStart_ && c == '.') out.push_back('.');
    if (c == '\n') {
      out.append("\r\n");
      atLineStart_ = true;
    } else {
      out.push_back(c);
      atLineStart_ = false;
    }
  }
}

bool BodyEncoder::finish(std::string& out) {
  if (!atLineStart_) return false;
  out.append(".\r\n");
  return true;
}

}  // namespace qtls::smtp
