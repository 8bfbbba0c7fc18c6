// The shim <-> qtls-remoted wire protocol, version 1 (docs/shim-protocol.md).
// Header-only constants: the shim links nothing from libqtls_core.
#pragma once

#include <cstddef>

namespace qtls::shimproto {

// First netstring of every request: the protocol version, and which front end asks (the
// qmail-remote drop-in, or qtls-rspawn, the qmail-rspawn replacement).
inline constexpr char kVersion[] = "qtls-remote/1";
inline constexpr char kVersionRspawn[] = "qtls-rspawn/1";
// Answer frame types: the first byte of each answer netstring's payload.
inline constexpr char kKeepalive = '.';  // "still working", sent while a delivery runs
inline constexpr char kReport = 'R';     // qmail-remote's output bytes follow; last frame
// "the final dot is going out to <ip>" (the payload), sent just before it is written: a front
// end that then loses the daemon says "Possible duplicate!" as qmail-remote does.
inline constexpr char kDotSent = 'd';
// Limits both sides enforce.
inline constexpr size_t kMaxRequest = 4 * 1024 * 1024;
inline constexpr size_t kMaxAnswerFrame = 1024 * 1024;
inline constexpr unsigned kKeepaliveSeconds = 10;

}  // namespace qtls::shimproto
