// The failure table (failure_table.h). The texts are qmail-remote's and the qmail-tls
// patch's, byte for byte (spec 2.4-2.10, 3.7), with their placeholders:
//   {ip}      the server's address           {said}   "Remote host said: <reply>" or ""
//   {dup}     "Possible duplicate! " after the final dot may have gone, else ""
//   {arg}     the row's subject               {arg!p}  the same, bytes outside 33..126 as '?'
//   {arg!w}   the first 200 bytes, bytes outside 32..126 as '?' (an exception's text)
//   {detail}  what put it out of step         {detail!p} a certificate's name, as {arg!p}
//   {:err}    ": <err>", or "" without one    {n} a number   {secs} seconds, shortest form
//   {path}    the daemon's socket
#include "report/failure_table.h"

#include <cstdio>

namespace qtls::report {
namespace {

using F = Failure;
using N = Next;
using C = Conn;

// clang-format off
constexpr FailureRow kRows[] = {
// failure                name                  letter    text
//   next               conn       TLS-RPT result type          reason
{F::kNone,               "none",               0,        "",
   N::kStop,          C::kNone,  "",                          ""},
// Where to deliver.
{F::kDnsTemp,            "dns_temp",           'Z',      "Sorry, I couldn't find any host by that name. (#4.1.2)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kNoMx,               "no_mx",              'D',      "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kDnsPerm,            "dns_perm",           'D',      "Sorry, I couldn't find any host named {arg!p}. (#5.1.2)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kAmbiguousMx,        "ambiguous_mx",       'D',      "Sorry. Although I'm listed as a best-preference MX or A for that host,\n"
                                                         "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n",
   N::kStop,          C::kNone,  "",                          ""},
// One address of the walk.
{F::kTcptoSkipped,       "tcpto_skipped",      0,        "",
   N::kNextAddress,   C::kNone,  "",                          ""},
{F::kConnectFailed,      "connect_failed",     0,        "",
   N::kNextAddress,   C::kNone,  "",                          ""},
{F::kBusy,               "busy",               'Z',      "Sorry, too many connections to {ip} are in use; none came free within {secs} seconds. (#4.4.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kReusedDead,         "reused_dead",        0,        "",
   N::kSameAddress,   C::kClose, "",                          ""},
{F::kNoConnection,       "no_connection",      'Z',      "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n",
   N::kStop,          C::kNone,  "",                          ""},
// Establishing the connection.
{F::kGreeting,           "greeting",           'Z',      "Connected to {ip} but greeting failed.\n{said}",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kGreetingTls,        "greeting_tls",       'Z',      "TLS Connected to {ip} but greeting failed.\n{said}",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kHelo,               "helo",               'Z',      "Connected to {ip} but my name was rejected.\n{said}",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kStarttlsNotOffered, "starttls_not_offered", 'Z',    "No TLS achieved while {arg}; connecting to {ip}.\n",
   N::kStop,          C::kQuit,  "starttls-not-supported",    "no_starttls"},
{F::kCaUnusable,         "ca_unusable",        'Z',      "TLS unable to load {arg}{:err}; connecting to {ip}.\n",
   N::kStop,          C::kQuit,  "validation-failure",        "ca_unusable"},
{F::kTlsInitCtx,         "tls_init_ctx",       'Z',      "TLS error initializing ctx{:err}; connecting to {ip}.\n",
   N::kStop,          C::kQuit,  "",                          "internal"},
{F::kTlsInitSsl,         "tls_init_ssl",       'Z',      "TLS error initializing ssl{:err}; connecting to {ip}.\n",
   N::kStop,          C::kQuit,  "",                          "internal"},
{F::kStarttlsRejected,   "starttls_rejected",  'Z',      "STARTTLS rejected while {arg}; connecting to {ip}.\n{said}",
   N::kStop,          C::kQuit,  "starttls-not-supported",    "starttls_rejected"},
{F::kTlsHandshake,       "tls_handshake",      'Z',      "TLS connect failed{:err}; connected to {ip}.\n",
   N::kStop,          C::kClose, "validation-failure",        "handshake"},
{F::kPeerUntrusted,      "peer_untrusted",     'Z',      "TLS unable to verify server with {arg}{:err}; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "certificate-not-trusted",   "untrusted"},
{F::kPeerExpired,        "peer_expired",       'Z',      "TLS unable to verify server with {arg}{:err}; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "certificate-expired",       "expired"},
{F::kPeerNoCertificate,  "peer_no_certificate", 'Z',     "TLS unable to verify server {arg}: no certificate provided; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "validation-failure",        "no_certificate"},
{F::kPeerPinMismatch,    "peer_pin_mismatch",  'Z',      "TLS unable to verify server {arg}: certificate matches no fingerprint of control/tlspolicy line {n}; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "validation-failure",        "pin_mismatch"},
{F::kPeerNoName,         "peer_no_name",       'Z',      "TLS unable to verify server {ip}: no host name to check; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "certificate-host-mismatch", "name_mismatch"},
{F::kPeerNoCommonName,   "peer_no_common_name", 'Z',     "TLS unable to verify server {arg}: certificate contains no valid commonName; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "certificate-host-mismatch", "name_mismatch"},
{F::kPeerCnMismatch,     "peer_cn_mismatch",   'Z',      "TLS unable to verify server {arg}: received certificate for {detail!p}; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "certificate-host-mismatch", "name_mismatch"},
{F::kPeerSanMismatch,    "peer_san_mismatch",  'Z',      "TLS unable to verify server {arg}: certificate contains no matching dNSNnames; connected to {ip}.\n",
   N::kStop,          C::kQuit,  "certificate-host-mismatch", "name_mismatch"},
// The transaction.
{F::kMailRefused,        "mail_refused",       kByCode,  "Connected to {ip} but sender was rejected.\n{said}",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kRcptAccepted,       "rcpt_accepted",      'r',      "",
   N::kStop,          C::kNone,  "",                          ""},
{F::kRcptRefused,        "rcpt_refused",       kByCode,  "{ip} does not like recipient.\n{said}",
   N::kStop,          C::kNone,  "",                          ""},
{F::kNoRecipients,       "no_recipients",      'D',      "Giving up on {ip}.\n",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kDataRefused,        "data_refused",       kByCode,  "{ip} failed on DATA command.\n{said}",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kDotRefused,         "dot_refused",        kByCode,  "{ip} failed after I sent the message.\n{said}",
   N::kStop,          C::kQuit,  "",                          ""},
{F::kDotAccepted,        "accepted",           'K',      "{ip} accepted message.\n{said}",
   N::kStop,          C::kCache, "",                          ""},
{F::kReadMessage,        "read_message",       'Z',      "Unable to read message. (#4.3.0)\n",
   N::kStop,          C::kClose, "",                          ""},
{F::kPartialLine,        "partial_line",       'D',      "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n",
   N::kStop,          C::kClose, "",                          ""},
{F::kDied,               "died",               'Z',      "Connected to {ip} but connection died. {dup}(#4.4.2)\n",
   N::kStop,          C::kClose, "",                          ""},
{F::kMalformed,          "malformed",          'Z',      "Connected to {ip} but the reply was malformed ({detail}). {dup}(#4.4.2)\n",
   N::kStop,          C::kClose, "",                          ""},
// Stopped from outside, before a connection was up or on one; an exception.
{F::kDeadlineEarly,      "deadline_early",     'Z',      "Sorry, the delivery took longer than {n} seconds. (#4.4.1)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kDeadline,           "deadline",           'Z',      "Connected to {ip} but the delivery took longer than {n} seconds. {dup}(#4.4.2)\n",
   N::kStop,          C::kClose, "",                          ""},
{F::kShutdownEarly,      "shutdown_early",     'Z',      "qtls-remoted stopped before the delivery was made. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kShutdown,           "shutdown",           'Z',      "Connected to {ip} but qtls-remoted stopped during the delivery. {dup}(#4.3.0)\n",
   N::kStop,          C::kClose, "",                          ""},
{F::kShimGoneEarly,      "shim_gone_early",    'Z',      "qtls-remote went away; delivery abandoned. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kShimGone,           "shim_gone",          'Z',      "Connected to {ip} but qtls-remote went away; delivery abandoned. {dup}(#4.3.0)\n",
   N::kStop,          C::kClose, "",                          ""},
{F::kInternal,           "internal",           'Z',      "qtls-remoted: internal error during the delivery: {arg!w}. {dup}(#4.3.0)\n",
   N::kStop,          C::kClose, "",                          ""},
// The intake's refusals.
{F::kIntakeUid,          "intake_uid",         'Z',      "qtls-remoted refused uid {n}: not in its allow-list. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kIntakeBusy,         "intake_busy",        'Z',      "qtls-remoted has {n} deliveries in progress (--max-deliveries). (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kIntakeTooLarge,     "intake_too_large",   'Z',      "qtls-remoted: request too large. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kIntakeMalformed,    "intake_malformed",   'Z',      "qtls-remoted: malformed request: {arg}. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kIntakeNoFd,         "intake_no_fd",       'Z',      "qtls-remoted: no message file descriptor received. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
// qtls-remote on its own, and when the daemon fails it.
{F::kShimUsage,          "shim_usage",         'D',      "I (qmail-remote) was invoked improperly. (#5.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kShimNoHome,         "shim_no_home",       'Z',      "Unable to switch to home directory. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kShimOutOfMemory,    "shim_out_of_memory", 'Z',      "Out of memory. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kShimReadMessage,    "shim_read_message",  'Z',      "Unable to read message. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kShimTooLarge,       "shim_too_large",     'D',      "Too many recipients or addresses too long for qtls-remote. (#5.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kDaemonTrouble,      "daemon_trouble",     'Z',      "qtls-remote: {arg} qtls-remoted at {path}{:err}. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kDaemonTroubleAfterDot, "daemon_trouble_after_dot", 'Z', "Connected to {ip} but connection died. qtls-remote: {arg} qtls-remoted at {path}{:err}, after the final dot. Possible duplicate! (#4.4.2)\n",
   N::kStop,          C::kNone,  "",                          ""},
// qtls-rspawn: spawn.c's refusals, and qmail-rspawn's own.
{F::kSpawnDelnumTooBig,  "spawn_delnum_too_big", 'Z',    "Internal error: delnum too big. (#4.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnDelnumInUse,   "spawn_delnum_in_use", 'Z',     "Internal error: delnum in use. (#4.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnMessidNonnumeric, "spawn_messid_nonnumeric", 'D', "Internal error: messid has nonnumerics. (#5.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnMessidTooLong, "spawn_messid_too_long", 'D',   "Internal error: messid too long. (#5.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnMessidTooShort, "spawn_messid_too_short", 'D', "Internal error: messid too short. (#5.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnNoHost,        "spawn_no_host",      'D',      "Sorry, address must include host name. (#5.1.3)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnOpen,          "spawn_open",         'Z',      "qmail-spawn unable to open message. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnFstat,         "spawn_fstat",        'Z',      "qmail-spawn unable to fstat message. (#4.3.0)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnWrongType,     "spawn_wrong_type",   'Z',      "Sorry, message has wrong type. (#4.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnWrongOwner,    "spawn_wrong_owner",  'Z',      "Sorry, message has wrong owner. (#4.3.5)\n",
   N::kStop,          C::kNone,  "",                          ""},
{F::kSpawnNoOutput,      "spawn_no_output",    'Z',      "qmail-remote produced no output.\n",
   N::kStop,          C::kNone,  "",                          ""},
};
// clang-format on

constexpr bool inOrder() {
  for (size_t i = 0; i < std::size(kRows); ++i)
    if (static_cast<size_t>(kRows[i].failure) != i) return false;
  return std::size(kRows) == static_cast<size_t>(Failure::kCount);
}
static_assert(inOrder(), "kRows: one row per Failure, in the order of the enum");

// Bytes outside lo..126 shown as '?'.
std::string shown(std::string_view s, unsigned char lo) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < lo || static_cast<unsigned char>(c) > 126) c = '?';
  return out;
}

std::string fill(std::string_view tmpl, const EndingContext& c) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find('{', i);
    if (open == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    out.append(tmpl.substr(i, open - i));
    const size_t close = tmpl.find('}', open);
    const std::string_view name = tmpl.substr(open + 1, close - open - 1);
    i = close + 1;
    if (name == "ip") {
      out.append(c.ip);
    } else if (name == "said") {
      if (c.said.empty()) continue;
      std::string said = "Remote host said: " + std::string(c.said);
      for (char& ch : said)
        if (ch == '\0') ch = '?';  // the report is NUL-terminated
      out += said;
    } else if (name == "dup") {
      if (c.afterDot) out += "Possible duplicate! ";
    } else if (name == "arg") {
      out.append(c.arg);
    } else if (name == "arg!p") {
      out += shown(c.arg, 33);
    } else if (name == "arg!w") {
      out += shown(c.arg.substr(0, 200), 32);
    } else if (name == "detail") {
      out.append(c.detail);
    } else if (name == "detail!p") {
      out += shown(c.detail, 33);
    } else if (name == ":err") {
      if (!c.err.empty()) out += ": " + std::string(c.err);
    } else if (name == "n") {
      out += std::to_string(c.n);
    } else if (name == "path") {
      out.append(c.path);
    } else if (name == "secs") {
      char b[32];
      std::snprintf(b, sizeof b, "%g", c.seconds);
      out += b;
    }
  }
  return out;
}

}  // namespace

std::span<const FailureRow> failureTable() { return kRows; }

const FailureRow& rowOf(Failure f) { return kRows[static_cast<size_t>(f)]; }

std::string Ending::line() const { return letter == 0 ? std::string() : letter + text; }

std::string Ending::record() const {
  if (letter == 0) return "";
  std::string out = line();
  out.push_back('\0');
  return out;
}

Ending judge(Failure f, const EndingContext& c) {
  const FailureRow& row = rowOf(f);
  Ending e;
  e.failure = f;
  e.letter = row.letter;
  if (row.letter == kByCode) {
    const bool recipient = f == Failure::kRcptRefused;
    e.letter = c.code >= 500 ? (recipient ? 'h' : 'D') : (recipient ? 's' : 'Z');
  }
  e.text = fill(row.text, c);
  e.next = row.next;
  e.conn = row.conn;
  if (c.owed && e.conn == Conn::kQuit) e.conn = Conn::kClose;
  if (c.serverClosing && e.conn == Conn::kCache) e.conn = Conn::kQuit;
  e.tlsrpt = row.tlsrpt;
  e.reason = row.reason;
  return e;
}

}  // namespace qtls::report
