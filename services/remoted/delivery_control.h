// How a running delivery is stopped from outside, and why. Three things may end a delivery
// before it ends by itself: the shim that asked for it went away (qmail no longer waits for
// the answer), its absolute deadline passed, or the daemon's stop drain ran out. Stopping
// closes the SMTP connection, so whatever operation the delivery awaits fails at once, and the
// delivery then reports by the reason (failure_table.h: stopFailure). A delivery that had not sent
// the final dot has sent nothing the server can queue; one that had is a possible duplicate.
//
// stop(), reason() and stopped() may be called from the delivery's strand and from its
// connection's (the transaction checks stillWanted() there); the rest runs on the delivery's.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "report/failure_table.h"

namespace qtls::remoted {

class SmtpConn;

enum class StopReason { kNone, kShimGone, kDeadline, kShutdown };

// Word for the log line's `stopped=` field.
const char* stopReasonName(StopReason r);
// The failure table's row for a delivery stopped for `why`: with a connection up or not.
report::Failure stopFailure(StopReason why, bool connected);

class DeliveryControl {
 public:
  // The first reason wins; later calls change nothing, and so do calls after finish().
  void stop(StopReason why);
  // The delivery has its report: a stop that was already on its way no longer applies.
  void finish() {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }
  StopReason reason() const { return reason_.load(); }
  bool stopped() const { return reason_.load() != StopReason::kNone; }

  // The connection that stop() closes (the delivery's current one).
  void attach(const std::shared_ptr<SmtpConn>& conn) {
    std::lock_guard<std::mutex> lock(mu_);
    conn_ = conn;
  }
  // Called by stop() too: ends a wait that is not on the connection (DNS). Empty = none.
  std::function<void()> interrupt;

  // Asks the shim link, synchronously, whether anyone still waits for the answer; stops the
  // delivery (kShimGone) if not. The delivery calls it just before DATA and before the final
  // dot, so a shim that died a moment ago cannot have the message sent behind its back.
  bool stillWanted();
  std::function<bool()> shimAlive;  // set by the intake; empty = always wanted
  // Called just before the final dot is written to `ip`: the intake tells the front end, so
  // that losing the daemon from then on is reported as a possible duplicate. May be empty.
  std::function<void(const std::string& ip)> dotGoing;

  // The delivery's absolute time limit in seconds (for the report text).
  long limitSeconds = 0;

 private:
  mutable std::mutex mu_;
  std::atomic<StopReason> reason_{StopReason::kNone};
  bool finished_ = false;
  std::weak_ptr<SmtpConn> conn_;
};

}  // namespace qtls::remoted
