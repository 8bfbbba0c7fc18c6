// Every way a delivery can end, one named row each, and the one module that says what a row
// means (docs/compatibility.md, "The failure table"): the qmail letter and the exact text
// (spec 2.4-2.10, 3.7; qmail-remote's and the qmail-tls patch's bytes unless
// docs/compatibility.md says otherwise), whether the walk goes on to the next address, what
// becomes of the connection, the TLS-RPT result type (RFC 8460 section 4.3) and the word of
// qtls_remote_tls_failures_total{reason}. Postfix's smtp_trouble.c is the model: the code
// that meets a failure names it; this table alone decides what it means. The only maker of
// report bytes in qtls-remoted (outcome.h's Report takes nothing else), qtls-remote and
// qtls-rspawn. std only: the shim programs compile failure_table.cc into themselves (they link
// nothing from libqtls_core).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace qtls::report {

enum class Failure : uint8_t {
  kNone,
  // Where to deliver (targets.cc).
  kDnsTemp,
  kNoMx,
  kDnsPerm,
  kAmbiguousMx,
  // One address of the walk (dialogue.cc).
  kTcptoSkipped,
  kConnectFailed,
  kBusy,
  kReusedDead,
  kNoConnection,
  // Establishing the connection (dialogue.cc, dialogue_tls.cc, peer_check.cc).
  kGreeting,
  kGreetingTls,
  kHelo,
  kStarttlsNotOffered,
  kCaUnusable,
  kTlsInitCtx,
  kTlsInitSsl,
  kStarttlsRejected,
  kTlsHandshake,
  kPeerUntrusted,
  kPeerExpired,
  kPeerNoCertificate,
  kPeerPinMismatch,
  kPeerNoName,
  kPeerNoCommonName,
  kPeerCnMismatch,
  kPeerSanMismatch,
  // The transaction (transaction.cc).
  kMailRefused,
  kRcptAccepted,
  kRcptRefused,
  kNoRecipients,
  kDataRefused,
  kDotRefused,
  kDotAccepted,
  kReadMessage,
  kPartialLine,
  kDied,
  kMalformed,
  // Stopped from outside (delivery_control.h), before a connection was up or on one.
  kDeadlineEarly,
  kDeadline,
  kShutdownEarly,
  kShutdown,
  kShimGoneEarly,
  kShimGone,
  kInternal,
  // The intake's refusals (intake.cc), before any delivery.
  kIntakeUid,
  kIntakeBusy,
  kIntakeTooLarge,
  kIntakeMalformed,
  kIntakeNoFd,
  // qtls-remote (the qmail-remote drop-in) on its own, and when the daemon fails it.
  kShimUsage,
  kShimNoHome,
  kShimOutOfMemory,
  kShimReadMessage,
  kShimTooLarge,
  kDaemonTrouble,
  kDaemonTroubleAfterDot,
  // qtls-rspawn: notqmail spawn.c's refusals and qmail-rspawn's own, in qmail-send's terms.
  kSpawnDelnumTooBig,
  kSpawnDelnumInUse,
  kSpawnMessidNonnumeric,
  kSpawnMessidTooLong,
  kSpawnMessidTooShort,
  kSpawnNoHost,
  kSpawnOpen,
  kSpawnFstat,
  kSpawnWrongType,
  kSpawnWrongOwner,
  kSpawnNoOutput,
  kCount
};

// After this row: the next address, the same address on a new connection, or no more.
enum class Next : uint8_t { kStop, kNextAddress, kSameAddress };
// What becomes of the connection: none up, offered to the cache (a decline is a QUIT), QUIT
// after the report is answered, or closed without a word.
enum class Conn : uint8_t { kNone, kCache, kQuit, kClose };

// The letter that depends on the reply: 5xx D (h for a recipient), anything else Z (s).
inline constexpr char kByCode = '*';

struct FailureRow {
  Failure failure;
  std::string_view name;  // the row's name in docs/compatibility.md
  char letter;            // K Z D r, kByCode, or 0: no record (the walk goes on)
  std::string_view text;  // with placeholders, filled from the context (failure_table.cc)
  Next next;
  Conn conn;
  std::string_view tlsrpt;  // RFC 8460 4.3 result type; "" when not a TLS failure
  std::string_view reason;  // qtls_remote_tls_failures_total{reason}; "" when none
};

// The rows, in the order of Failure.
std::span<const FailureRow> failureTable();
const FailureRow& rowOf(Failure f);

// What the row's text is filled with.
struct EndingContext {
  std::string_view ip;         // the server's address ("" before a connection)
  int code = 0;                // the reply's code, when there is one
  std::string_view said;       // the reply's text as kept (smtp::Reply::text); "" = none
  bool afterDot = false;       // the final dot may have reached the server
  bool owed = false;           // replies are still owed, or the server waits for a body: no QUIT
  bool serverClosing = false;  // a 421 came during the transaction: not for the cache
  std::string_view arg;        // the row's subject: a host name, a policy sentence, a CA file...
  std::string_view detail;     // the certificate's name, what put the dialogue out of step
  std::string_view err;        // the library's or the X509 error text; "" = none
  std::string_view path;       // the daemon's socket (qtls-remote)
  long n = 0;                  // seconds, a count, a uid, a tlspolicy line
  double seconds = 0;          // kBusy: the wait
};

// One row applied to one case.
struct Ending {
  Failure failure = Failure::kNone;
  char letter = 0;  // K Z D, or r h s for a recipient, or 0: no record
  std::string text;
  Next next = Next::kStop;
  Conn conn = Conn::kNone;
  std::string_view tlsrpt, reason;
  bool final() const { return letter == 'K' || letter == 'Z' || letter == 'D'; }
  // The letter and the text ("" for letter 0): qmail-send's form of a spawn answer.
  std::string line() const;
  // The report record: the line and NUL ("" for letter 0).
  std::string record() const;
};

Ending judge(Failure f, const EndingContext& c = {});

}  // namespace qtls::report
