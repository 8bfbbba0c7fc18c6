// Received line formatting, byte-compatible with qmail's received.c.
#include "received.h"

#include <cstdio>

#include "util/text.h"

namespace qtls::agent {
namespace {

// Every byte outside A-Za-z0-9.@%+/=:- becomes '?'.
std::string safe(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '@' || c == '%' || c == '+' || c == '/' || c == '=' || c == ':' ||
              c == '-';
    if (!ok) c = '?';
  }
  return out;
}

}  // namespace

std::string date822(std::time_t when) {
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  gmtime_r(&when, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d %s %d %02d:%02d:%02d -0000", tm.tm_mday, months[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string receivedLine(std::string_view remotehost, std::string_view helo,
                         std::string_view remoteip, std::string_view local,
                         std::string_view protocol, std::time_t when) {
  std::string out = "Received: from " + safe(remotehost);
  if (!helo.empty() && !text::equalsIgnoreCase(helo, remotehost))
    out += " (HELO " + safe(helo) + ")";
  out += " (" + safe(remoteip) + ")\n  by " + safe(local) + " with ";
  out.append(protocol);
  out += "; " + date822(when) + "\n";
  return out;
}

}  // namespace qtls::agent
