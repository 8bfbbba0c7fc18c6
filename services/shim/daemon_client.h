// The client side of the shim protocol (docs/shim-protocol.md), shared by the qmail-remote
// drop-in (qtls-remote) and the qmail-rspawn replacement (qtls-rspawn): the request, the
// descriptor passing, the answer frames, the report's shape, and the Z texts for every kind of
// trouble with the daemon. libc and std::string only, no exceptions.
#pragma once

#include <stddef.h>

#include <string>

namespace qtls::shimproto {

// The request: version netstring, then host, sender and recipients as netstrings.
std::string buildRequest(const char* version, const char* const* args, size_t n);

// A connected Unix stream socket to the daemon, or -1 with errno set. Close-on-exec.
int connectDaemon(const char* path);

// Sends `req` with `fd` passed (SCM_RIGHTS) on its first byte. false with errno set.
bool sendRequest(int sock, const std::string& req, int fd);

// The daemon's answer, parsed as it arrives: netstrings whose first payload byte is the frame
// type (keepalive, dot sent, report).
class AnswerParser {
 public:
  enum class Result { kMore, kKeepalive, kDotSent, kReport, kMalformed };
  // Takes whole frames from the front of `buf`; a report's bytes, or the address the final dot
  // went to, go to `payload`.
  Result next(std::string& buf, std::string& payload);
};

// What qmail-remote may print: recipient records (r, h, s; at most `recipients`), then exactly
// one K, Z or D record with text, each ending in NUL.
bool validReport(const std::string& out, size_t recipients);

// The report of a delivery the daemon failed: the failure table's `daemon_trouble` row, or,
// once the daemon said the final dot went out to `dotIp`, `daemon_trouble_after_dot`
// (qmail-remote's words for a connection lost after the dot: a possible duplicate).
std::string troubleReport(const char* what, const char* cause, const char* path,
                          const std::string& dotIp = std::string());

// The causes, in one place.
inline constexpr char kNoConnect[] = "unable to connect to";
inline constexpr char kNoSend[] = "unable to send the delivery to";
inline constexpr char kClosed[] = "connection closed before an answer from";
inline constexpr char kClosedNothing[] = "daemon stopped or crashed";
inline constexpr char kClosedMidFrame[] = "answer cut short";
inline constexpr char kTimedOut[] = "timed out waiting for";
inline constexpr char kLost[] = "lost contact with";
inline constexpr char kMalformed[] = "malformed answer from";

// Seconds to wait for any byte from the daemon: $QTLS_REMOTE_TIMEOUT (default 120), never less
// than three keepalive intervals (docs/operations.md), never more than a day.
int idleTimeout();

}  // namespace qtls::shimproto
