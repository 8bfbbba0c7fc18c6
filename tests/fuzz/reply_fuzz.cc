// Fuzz target: SMTP reply parser and EHLO keyword extraction (bytes from remote servers).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "smtp/reply.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  qtls::smtp::ReplyParser p;
  size_t used = 0;
  // Feed in two pieces to exercise resumption.
  used += p.feed(in.substr(0, size / 2));
  if (p.state() == qtls::smtp::ReplyParser::State::kNeedMore) used += p.feed(in.substr(used));
  if (used > size) __builtin_trap();
  if (p.state() == qtls::smtp::ReplyParser::State::kDone) {
    const auto& r = p.reply();
    if (r.code < 0 || r.code > 999 || r.text.size() > qtls::smtp::kMaxKeptReplyText)
      __builtin_trap();
    (void)qtls::smtp::ehloKeywords(r);
  }
  return 0;
}
