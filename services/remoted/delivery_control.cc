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

void DeliveryControl::stop(StopReason why) {
  if (finished_ || reason_ != StopReason::kNone || why == StopReason::kNone) return;
  reason_ = why;
  if (auto c = conn_.lock()) c->close();
  if (interrupt) interrupt();
}

bool DeliveryControl::stillWanted() {
  if (stopped()) return false;
  if (shimAlive && !shimAlive()) stop(StopReason::kShimGone);
  return !stopped();
}

}  // namespace qtls::remoted
