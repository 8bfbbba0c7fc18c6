// Turns a queued qmail message (LF line ends) into the SMTP DATA stream: each LF becomes CRLF,
// a line starting with '.' gets one more '.', and the stream ends with ".\r\n".
//
// CR bytes are sent unchanged, as stock qmail-remote and the TLS patch do (a stored "\r\n"
// goes out as "\r\r\n"); docs/compatibility.md explains the choice.
#pragma once

#include <string>
#include <string_view>

namespace qtls::smtp {

class BodyEncoder {
 public:
  // Appends the encoding of `in` to `out`.
  void feed(std::string_view in, std::string& out);
  // At end of input: appends the final ".\r\n" and returns true, or returns false when the
  // message ends with a non-empty line without LF (qmail refuses those with #5.6.2).
  bool finish(std::string& out);

 private:
  bool atLineStart_ = true;
};

}  // namespace qtls::smtp
