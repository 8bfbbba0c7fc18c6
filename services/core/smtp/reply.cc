// SMTP reply parser and EHLO keyword extraction.
#include "smtp/reply.h"

#include "util/text.h"

namespace qtls::smtp {

size_t ReplyParser::feed(std::string_view in) {
  size_t used = 0;
  while (used < in.size() && state_ == State::kNeedMore) {
    char c = in[used++];
    if (++total_ > kMaxReplyBytes) {
      state_ = State::kError;
      error_ = "reply longer than 65536 bytes";
      break;
    }
    if (c == '\r') continue;
    line_.push_back(c);
    if (c == '\n') endLine();
  }
  return used;
}

void ReplyParser::endLine() {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (line_.size() < 4 || !digit(line_[0]) || !digit(line_[1]) || !digit(line_[2]) ||
      (line_[3] != ' ' && line_[3] != '-' && line_[3] != '\n')) {
    state_ = State::kError;
    std::string shown = line_.substr(0, 40);
    if (!shown.empty() && shown.back() == '\n') shown.pop_back();
    error_ = "malformed reply line \"" + shown + "\"";
    for (char& ch : error_)
      if (static_cast<unsigned char>(ch) < 32 || static_cast<unsigned char>(ch) > 126) ch = '?';
    return;
  }
  if (first_) {
    reply_.code = (line_[0] - '0') * 100 + (line_[1] - '0') * 10 + (line_[2] - '0');
    first_ = false;
  }
  size_t room = kMaxKeptReplyText - std::min(kMaxKeptReplyText, reply_.text.size());
  reply_.text.append(line_, 0, std::min(room, line_.size()));
  const bool more = line_[3] == '-';
  line_.clear();
  if (!more) state_ = State::kDone;
}

std::vector<std::string> ehloKeywords(const Reply& reply) {
  std::vector<std::string> out;
  std::string_view s = reply.text;
  size_t nl = s.find('\n');
  if (nl == std::string_view::npos) return out;
  s.remove_prefix(nl + 1);  // the first line carries the server's name
  while (!s.empty()) {
    nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
    if (line.size() <= 4) continue;
    line.remove_prefix(4);
    size_t end = line.find_first_of(" \t");
    std::string_view kw = line.substr(0, end);
    kw = kw.substr(0, kw.find('='));
    if (!kw.empty()) out.emplace_back(kw);
  }
  return out;
}

bool hasKeyword(const std::vector<std::string>& keywords, std::string_view keyword) {
  for (const auto& k : keywords)
    if (text::equalsIgnoreCase(k, keyword)) return true;
  return false;
}

}  // namespace qtls::smtp
