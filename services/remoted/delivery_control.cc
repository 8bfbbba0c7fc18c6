// Stopping a delivery from outside.
#include "delivery_control.h"

#include "smtp_conn.h"

namespace qtls::remoted {

const char* stopReasonName(StopReason r) {
  switch (r) {
    case StopReason::kShimGone:
      return "shim_gone";
    case StopReason::kDeadline:
      return "deadline";
    case StopReason::kShutdown:
      return "shutdown";
    case StopReason::kNone:
      break;
  }
  return "-";
}

report::Failure stopFailure(StopReason why, bool connected) {
  switch (why) {
    case StopReason::kDeadline:
      return connected ? report::Failure::kDeadline : report::Failure::kDeadlineEarly;
    case StopReason::kShimGone:
      return connected ? report::Failure::kShimGone : report::Failure::kShimGoneEarly;
    case StopReason::kShutdown:
    case StopReason::kNone:  // never asked for: a stop always has its reason
      break;
  }
  return connected ? report::Failure::kShutdown : report::Failure::kShutdownEarly;
}

void DeliveryControl::stop(StopReason why) {
  std::shared_ptr<SmtpConn> conn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_ || reason_ != StopReason::kNone || why == StopReason::kNone) return;
    reason_ = why;
    conn = conn_.lock();
  }
  // The connection lives on its own strand: closed there, so the operation it awaits fails.
  if (conn) SmtpConn::closeFromOutside(std::move(conn));
  if (interrupt) interrupt();
}

bool DeliveryControl::stillWanted() {
  if (stopped()) return false;
  if (shimAlive && !shimAlive()) stop(StopReason::kShimGone);
  return !stopped();
}

}  // namespace qtls::remoted
