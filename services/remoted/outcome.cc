// Report byte formatting.
#include "outcome.h"

#include "util/text.h"

namespace qtls::remoted {

void Report::recipient(char kind, std::string_view text) {
  bytes_.push_back(kind);
  bytes_.append(text);
  bytes_.push_back('\0');
}

void Report::finish(char kind, std::string_view text) {
  if (finalKind_ != 0) return;  // exactly one final record
  finalKind_ = kind;
  finalText_ = std::string(text);
  bytes_.push_back(kind);
  bytes_.append(text);
  bytes_.push_back('\0');
}

std::string remoteSaid(const smtp::Reply& reply) {
  if (reply.text.empty()) return "";
  std::string out = "Remote host said: " + reply.text;
  for (char& c : out)
    if (c == '\0') c = '?';
  return out;
}

std::string connectedText(std::string_view prepend, std::string_view ip, std::string_view append,
                          const std::string& said) {
  return text::cat(prepend, ip, append, ".\n", said);
}

std::string tlsText(std::string_view what, std::string_view err, bool connected,
                    std::string_view ip, const std::string& said) {
  std::string out(what);
  if (!err.empty()) out += text::cat(": ", err);
  out += connected ? "; connected to " : "; connecting to ";
  out += text::cat(ip, ".\n", said);
  return out;
}

std::string diedText(std::string_view ip, bool afterDot, std::string_view detail) {
  std::string out = text::cat("Connected to ", ip, " but connection died. ");
  if (!detail.empty()) out += text::cat(detail, " ");
  if (afterDot) out += "Possible duplicate! ";
  out += "(#4.4.2)\n";
  return out;
}

std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 33 || static_cast<unsigned char>(c) > 126) c = '?';
  return out;
}

std::string permDnsText(std::string_view host) {
  return text::cat("Sorry, I couldn't find any host named ", printable(host), ". (#5.1.2)\n");
}

}  // namespace qtls::remoted
