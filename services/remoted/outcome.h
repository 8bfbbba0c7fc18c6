// The one place that writes qmail-remote's report bytes (spec 1.3, 2.8, 3.7): recipient
// records (r/h/s) and exactly one final K/Z/D record, each ending in NUL. Every text here is
// byte-compatible with qmail-remote and the qmail-tls patch unless docs/compatibility.md says
// otherwise.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "delivery_control.h"
#include "smtp/reply.h"

namespace qtls::remoted {

class Report {
 public:
  // `r` for an accepted recipient (no text), `h`/`s` for refused permanently/temporarily.
  void recipient(char kind, std::string_view text);
  void finish(char kind, std::string_view text);

  char finalKind() const { return finalKind_; }
  const std::string& finalText() const { return finalText_; }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  char finalKind_ = 0;
  std::string finalText_;
};

// "Remote host said: <text>" with NULs shown as '?', or "" when the reply kept no text.
std::string remoteSaid(const smtp::Reply& reply);

// qmail's quit(prepend, append): "<prepend><ip><append>.\n" plus the remote text.
std::string connectedText(std::string_view prepend, std::string_view ip, std::string_view append,
                          const std::string& said);

// qmail-tls's tls_quit: "<what>[: <err>]; connecting to <ip>.\n" (before the TLS object
// exists) or "; connected to <ip>.\n" (after), plus the remote text.
std::string tlsText(std::string_view what, std::string_view err, bool connected,
                    std::string_view ip, const std::string& said = "");

// "Connected to <ip> but connection died. [Possible duplicate! ](#4.4.2)\n"
std::string diedText(std::string_view ip, bool afterDot, std::string_view detail = "");

// A delivery stopped from outside (delivery_control.h). `ip` is empty when no SMTP connection
// was up yet; `afterDot` adds "Possible duplicate! ".
//   deadline:  "Connected to <ip> but the delivery took longer than <N> seconds. (#4.4.2)\n"
//   shutdown:  "Connected to <ip> but qtls-remoted stopped during the delivery. (#4.3.0)\n"
//   shim gone: "Connected to <ip> but qtls-remote went away; delivery abandoned. (#4.3.0)\n"
std::string stoppedText(StopReason why, std::string_view ip, bool afterDot, long limitSeconds);

// An exception inside the delivery: "qtls-remoted: internal error during the delivery:
// <what>. [Possible duplicate! ](#4.3.0)\n"
std::string internalErrorText(std::string_view what, bool afterDot);

// What qmail-send will do with these report bytes: qmail-rspawn's translation (spec 1.3),
// 'K' delivered, 'Z' deferred, 'D' bounced.
char qmailVerdict(std::string_view reportBytes);

// Fixed texts.
inline constexpr char kTempDns[] = "Sorry, I couldn't find any host by that name. (#4.1.2)\n";
inline constexpr char kNoMx[] = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n";
inline constexpr char kAmbigMx[] =
    "Sorry. Although I'm listed as a best-preference MX or A for that host,\n"
    "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n";
inline constexpr char kNoConn[] =
    "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n";
inline constexpr char kPartialLine[] =
    "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n";
inline constexpr char kReadMessage[] = "Unable to read message. (#4.3.0)\n";
// Over a connection cap (conn_limits.h) for longer than `waited`: "Sorry, too many
// connections to <ip> are in use; none came free within <N> seconds. (#4.4.5)\n"
std::string busyText(std::string_view ip, std::chrono::milliseconds waited);

// "Sorry, I couldn't find any host named <host>. (#5.1.2)\n"
std::string permDnsText(std::string_view host);

// Bytes outside 33..126 shown as '?', as qmail-remote shows untrusted names in reports.
std::string printable(std::string_view s);

}  // namespace qtls::remoted
