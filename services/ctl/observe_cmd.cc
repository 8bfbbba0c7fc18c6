// qtlsctl's observing commands (observe_cmd.h).
#include "observe_cmd.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>

#include "output.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;

int stats(Client& c, const Options& o, Args& a) {
  v1::GetStatsRequest req;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--prefix")
      req.set_name_prefix(a.next(f));
    else
      usage("stats: unknown argument " + f);
  }
  v1::GetStatsResponse r;
  auto ctx = c.context();
  grpc::Status s = c.metrics().GetStats(ctx.get(), req, &r);
  if (!s.ok()) return fail(o, s);
  if (o.json) {
    printJson(r);
    return kOk;
  }
  std::printf("%s policy generation %llu, up %.0f s\n", r.daemon().c_str(),
              static_cast<unsigned long long>(r.policy_generation()), r.uptime_seconds());
  for (const auto& f : r.families()) {
    for (const auto& sm : f.samples()) {
      std::string labels;
      for (const auto& l : sm.labels())
        labels += (labels.empty() ? "" : ",") + l.name() + "=" + l.value();
      std::string name = f.name() + (labels.empty() ? "" : "{" + labels + "}");
      if (f.type() == v1::MetricFamily::TYPE_HISTOGRAM)
        std::printf("%-72s count %llu, mean %.4f s\n", name.c_str(),
                    static_cast<unsigned long long>(sm.count()),
                    sm.count() ? sm.sum() / static_cast<double>(sm.count()) : 0.0);
      else
        std::printf("%-72s %.15g\n", name.c_str(), sm.value());
    }
  }
  return kOk;
}

int watch(Client& c, const Options& o, Args& a) {
  v1::WatchSessionsRequest req;
  long count = -1;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--direction") {
      std::string d = a.next(f);
      if (d == "in" || d == "inbound")
        req.set_direction(v1::WatchSessionsRequest::DIRECTION_INBOUND);
      else if (d == "out" || d == "outbound")
        req.set_direction(v1::WatchSessionsRequest::DIRECTION_OUTBOUND);
      else
        usage("--direction: in or out");
    } else if (f == "--count")
      count = static_cast<long>(number(f, a.next(f)));
    else
      usage("watch: unknown argument " + f);
  }
  auto ctx = c.context(true);
  auto reader = c.metrics().WatchSessions(ctx.get(), req);
  v1::SessionRecord rec;
  long n = 0;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  while ((count < 0 || n < count) && reader->Read(&rec)) {
    ++n;
    if (o.json) {
      std::string out;
      google::protobuf::util::JsonPrintOptions opts;
      opts.preserve_proto_field_names = true;
      (void)google::protobuf::util::MessageToJsonString(rec, &out, opts);
      std::printf("%s\n", out.c_str());
      continue;
    }
    if (rec.dropped_before() > 0)
      std::printf("(%llu records lost: this watcher fell behind)\n",
                  static_cast<unsigned long long>(rec.dropped_before()));
    time_t t = static_cast<time_t>(rec.end_time());
    char when[32];
    std::strftime(when, sizeof when, "%H:%M:%S", std::localtime(&t));
    std::printf("%s %-8s %s %s level=%s/%s tls=%s/%s verify=%s outcome=%s %.3fs\n", when,
                rec.direction().c_str(), rec.peer().c_str(),
                rec.domain().empty() ? "-" : rec.domain().c_str(), rec.level_requested().c_str(),
                rec.level_achieved().c_str(), rec.tls_version().c_str(), rec.cipher().c_str(),
                rec.verify().c_str(), rec.outcome().c_str(), rec.duration_seconds());
  }
  if (count >= 0 && n >= count) {
    ctx->TryCancel();
    return kOk;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return fail(o, s);
  return kOk;
}

int health(Client& c, const Options& o, Args& a) {
  grpc::health::v1::HealthCheckRequest req;
  while (a.more()) {
    std::string f = a.next("");
    if (f == "--service")
      req.set_service(a.next(f));
    else
      usage("health: unknown argument " + f);
  }
  grpc::health::v1::HealthCheckResponse r;
  auto ctx = c.context();
  grpc::Status s = c.health().Check(ctx.get(), req, &r);
  if (!s.ok()) return fail(o, s);
  if (o.json) {
    printJson(r);
  } else {
    std::printf("%s\n",
                grpc::health::v1::HealthCheckResponse::ServingStatus_Name(r.status()).c_str());
  }
  return r.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kOk : kNotServing;
}

}  // namespace qtls::ctl
