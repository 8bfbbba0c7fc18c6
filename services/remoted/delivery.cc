// A delivery from request to report: targets, the SMTP dialogue, the deadline, and the record
// of what happened (metrics, the log line, the admin event stream).
#include "delivery.h"

#include <sys/stat.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <exception>

#include "dialogue.h"
#include "log/log.h"
#include "util/text.h"

namespace qtls::remoted {
namespace {

// "a@x:250,b@y:550": each recipient with its RCPT reply code ("-" when not reached), the first
// 20 of them.
std::string recipientResults(const DeliveryRequest& req, const std::vector<int>& codes) {
  std::string out;
  const size_t shown = std::min<size_t>(req.recipients.size(), 20);
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ',';
    out += text::cat(req.recipients[i], ":",
                     i < codes.size() && codes[i] != 0 ? std::to_string(codes[i]) : "-");
  }
  if (req.recipients.size() > shown) out += text::cat(",+", req.recipients.size() - shown);
  return out;
}

void record(const DeliveryDeps& deps, const DeliveryRequest& req, const Dialogue& dialogue,
            const DeliveryControl& control, double secs, DeliveryResult& out) {
  const char verdict = qmailVerdict(out.report.bytes());
  const ConnFacts& f = dialogue.facts_;
  // The TLS failure that ended the delivery, a word of qtls_remote_tls_failures_total's set.
  const std::string failure(out.report.final().reason);
  std::string candidate;  // " candidate=<verdict>" when one is evaluated
  fleet::Verdict judged = fleet::Verdict::kNotEvaluated;
  if (deps.candidate) {
    judged = judgeCandidate(*deps.candidate, req.host, dialogue.facts_.seen);
    candidate = text::cat(" candidate=", fleet::verdictName(judged));
    if (deps.metrics) deps.metrics->config.judged(judged);
  }
  if (deps.metrics) {
    deps.metrics->deliveries
        .with({verdict == 'K'   ? "success"
               : verdict == 'D' ? "permanent"
                                : "temporary",
               req.frontend})
        .add(1);
    deps.metrics->deliverySeconds().observe(secs);
    if (f.tlsVersion != "-")
      deps.metrics->tlsSessions
          .with({f.levelRequested, f.tlsVersion, f.cipher, f.resumed ? "yes" : "no",
                 dialogue.reused() ? "yes" : "no"})
          .add(1);
    if (!failure.empty()) deps.metrics->tlsFailures.with({f.levelRequested, failure}).add(1);
  }
  struct stat st;
  const std::string id =
      req.messageFd >= 0 && ::fstat(req.messageFd, &st) == 0 ? std::to_string(st.st_ino) : "-";
  char delay[32];
  std::snprintf(delay, sizeof delay, "%.3f", secs);
  const std::string& result = out.report.finalText();
  out.logLine =
      text::cat("delivery id=", id, " gen=", deps.config->generation,
                " digest=", deps.config->digest, " domain=", log::value(req.host),
                " rcpts=", log::value(recipientResults(req, dialogue.rcptCodes_)),
                " relay=", f.relay.empty() ? "-" : log::value(f.relay), " policy=", f.policySource,
                " level=", f.levelRequested, "/", f.levelAchieved, " tls=", f.tlsVersion, "/",
                f.cipher, " verify=", f.verify, " reused=", dialogue.reused() ? "yes" : "no",
                " resumed=", f.resumed ? "yes" : "no", " status=", std::string(1, verdict),
                control.stopped() ? text::cat(" stopped=", stopReasonName(control.reason())) : "",
                out.possibleDuplicate ? " possible_duplicate=yes" : "", candidate, " delay=", delay,
                " result=", log::value(result));
  if (deps.events) {
    admin::SessionEvent e;
    e.endTime = admin::unixNow();
    e.direction = "outbound";
    e.peer = f.relay.empty() ? "-" : f.relay;
    e.domain = req.host;
    e.levelRequested = f.levelRequested;
    e.levelAchieved = f.levelAchieved;
    e.policySource = f.policySource;
    e.tlsVersion = f.tlsVersion;
    e.cipher = f.cipher;
    e.verify = f.verify;
    e.resumed = f.resumed;
    e.connectionReused = dialogue.reused();
    e.failureReason = failure.empty() ? "none" : failure;
    e.outcome = std::string(1, verdict);
    e.detail = result;
    e.durationSeconds = secs;
    e.recipients = static_cast<uint32_t>(req.recipients.size());
    e.policyGeneration = deps.config->generation;
    e.policyDigest = deps.config->digest;
    if (deps.candidate) {
      e.candidateDigest = deps.candidate->digest;
      e.candidateVerdict = std::string(fleet::verdictName(judged));
    }
    deps.events->publish(e);
  }
}

}  // namespace

asio::awaitable<std::string> exceptionFrom(asio::awaitable<void> body) {
  try {
    co_await std::move(body);
  } catch (const std::exception& e) {
    co_return std::string(e.what()).empty() ? "exception" : e.what();
  } catch (...) {
    co_return "unknown exception";
  }
  co_return "";
}

long deliveryLimitSeconds(const RemoteConfig& cfg, size_t recipients, long cap) {
  const long steps = 10 + static_cast<long>(std::min<size_t>(recipients, 100000));
  const long limit = cfg.timeoutConnect * 5 + cfg.timeoutRemote * steps;
  return std::max(1L, std::min(limit, cap));
}

namespace {

// Targets for the delivery, or nullopt when the delivery was stopped first: the lookup runs on
// its own (it cannot be cancelled), so a stop never waits behind DNS timeouts.
asio::awaitable<std::optional<TargetList>> lookUp(const DeliveryDeps& deps,
                                                  const DeliveryRequest& req,
                                                  DeliveryControl& control) {
  struct Wait {
    explicit Wait(asio::any_io_executor ex) : done(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer done;
    std::optional<TargetList> targets;
    bool over = false;  // the lookup ended or the delivery was stopped
    void end() {
      over = true;
      done.cancel();
    }
  };
  if (control.stopped()) co_return std::nullopt;
  auto ex = co_await asio::this_coro::executor;
  auto w = std::make_shared<Wait>(ex);
  // The lookup may finish before the wait below begins (co_spawn dispatches inline on this
  // strand): `over` is checked first, so its end is never missed.
  asio::co_spawn(
      ex,
      [w, resolver = deps.resolver, host = req.host, route = deps.config->routes.lookup(req.host),
       port = deps.mxPort, ipme = deps.ipme]() -> asio::awaitable<void> {
        w->targets = co_await findTargets(*resolver, host, route, port, *ipme);
        w->end();
      },
      asio::detached);
  control.interrupt = [w] { w->end(); };
  std::error_code ec;
  while (!w->over) co_await w->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  control.interrupt = nullptr;
  co_return std::move(w->targets);
}

asio::awaitable<DeliveryResult> deliverUnguarded(const DeliveryDeps& deps,
                                                 const DeliveryRequest& req,
                                                 std::shared_ptr<DeliveryControl> control) {
  DeliveryResult out;
  const auto start = std::chrono::steady_clock::now();
  stats::GaugeGuard inFlight(deps.metrics ? &deps.metrics->inFlight : nullptr);
  const RemoteConfig& cfg = *deps.config;
  control->limitSeconds = deliveryLimitSeconds(cfg, req.recipients.size(), deps.maxDeliverySeconds);
  asio::steady_timer deadline(co_await asio::this_coro::executor,
                              std::chrono::seconds(control->limitSeconds));
  deadline.async_wait([weak = std::weak_ptr<DeliveryControl>(control)](std::error_code ec) {
    if (ec) return;
    if (auto c = weak.lock()) c->stop(StopReason::kDeadline);
  });

  Dialogue dialogue(deps, req, *control, out);
  auto work = [&]() -> asio::awaitable<void> {
    std::optional<TargetList> targets = co_await lookUp(deps, req, *control);
    EndingContext c;
    if (!targets || control->stopped()) {
      c.n = control->limitSeconds;
      out.report.add(judge(stopFailure(control->reason(), false), c));
    } else if (targets->fail != Failure::kNone) {
      c.arg = targets->failName;
      out.report.add(judge(targets->fail, c));
    } else {
      co_await dialogue.run(*targets);
    }
  };
  const std::string internalError = co_await exceptionFrom(work());
  deadline.cancel();
  control->finish();
  if (!internalError.empty()) {
    dialogue.failed(internalError);
    out.openConn.reset();
    log::error(text::cat("delivery domain=", log::value(req.host),
                         ": exception: ", log::value(internalError)));
  }
  out.possibleDuplicate = dialogue.possibleDuplicate();
  try {  // the report stands whatever happens to its record
    record(deps, req, dialogue, *control,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), out);
  } catch (const std::exception& e) {
    log::error(
        text::cat("delivery domain=", log::value(req.host), ": recording failed: ", e.what()));
  }
  co_return out;
}

}  // namespace

asio::awaitable<DeliveryResult> deliver(const DeliveryDeps& deps, const DeliveryRequest& req,
                                        std::shared_ptr<DeliveryControl> control) {
  std::string what;
  try {
    co_return co_await deliverUnguarded(deps, req, control);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "unknown exception";
  }
  // Only before the dialogue started (it is guarded itself): nothing was sent.
  control->finish();
  log::error(text::cat("delivery domain=", log::value(req.host), ": exception: ", what));
  DeliveryResult out;
  EndingContext c;
  c.arg = what;
  out.report.add(judge(Failure::kInternal, c));
  co_return out;
}

}  // namespace qtls::remoted
