// Report byte formatting.
#include "outcome.h"

#include <cstdio>

#include "../shim/rspawn_report.h"
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

std::string stoppedText(StopReason why, std::string_view ip, bool afterDot, long limitSeconds) {
  std::string out = ip.empty() ? std::string() : text::cat("Connected to ", ip, " but ");
  std::string_view code = "(#4.3.0)\n";
  switch (why) {
    case StopReason::kDeadline:
      out += text::cat(ip.empty() ? "Sorry, the" : "the", " delivery took longer than ",
                       limitSeconds, " seconds. ");
      code = ip.empty() ? "(#4.4.1)\n" : "(#4.4.2)\n";
      break;
    case StopReason::kShutdown:
      out += ip.empty() ? "qtls-remoted stopped before the delivery was made. "
                        : "qtls-remoted stopped during the delivery. ";
      break;
    case StopReason::kShimGone:
      out += "qtls-remote went away; delivery abandoned. ";
      break;
    case StopReason::kNone:  // not stopped: never asked for
      out += "the delivery was stopped. ";
      break;
  }
  if (afterDot) out += "Possible duplicate! ";
  out += code;
  return out;
}

std::string internalErrorText(std::string_view what, bool afterDot) {
  std::string shown(what.substr(0, 200));
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
  return text::cat("qtls-remoted: internal error during the delivery: ", shown, ". ",
                   afterDot ? "Possible duplicate! " : "", "(#4.3.0)\n");
}

char qmailVerdict(std::string_view s) { return shimproto::rspawnReport(s)[0]; }

std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 33 || static_cast<unsigned char>(c) > 126) c = '?';
  return out;
}

std::string busyText(std::string_view ip, std::chrono::milliseconds waited) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", std::chrono::duration<double>(waited).count());
  return text::cat("Sorry, too many connections to ", ip, " are in use; none came free within ",
                   secs, " seconds. (#4.4.5)\n");
}

std::string permDnsText(std::string_view host) {
  return text::cat("Sorry, I couldn't find any host named ", printable(host), ". (#5.1.2)\n");
}

}  // namespace qtls::remoted
