// The rollout's state in etcd and the controller lock (rollout_store.h).
#include "rollout_store.h"

#include <chrono>

#include "util/text.h"

namespace qtls::ctl {

absl::StatusOr<Read> loadRollout(RolloutEnv& env, const std::string& component) {
  auto kv = env.fleet->etcd().get(env.fleet->layout.rollout(component));
  if (!kv.ok()) return kv.status();
  Read out;
  if (!*kv) return out;
  out.exists = true;
  out.modRevision = (*kv)->modRevision;
  if (auto s = fleet::fromJson((*kv)->value, &out.r, (*kv)->key); !s.ok()) return s;
  // A record of a qtlsctl that counted waves from 0: the same wave, numbered from 1. A done
  // one held the count of waves, which is already the last wave's number.
  if (out.r.wave_numbering() == 0) {
    if (out.r.state() != v1::FleetRollout::DONE) out.r.set_wave(out.r.wave() + 1);
    out.r.set_wave_numbering(1);
  }
  return out;
}

absl::Status storeRollout(RolloutEnv& env, Read& rd) {
  auto ok = env.fleet->etcd().compareAndPut(env.fleet->layout.rollout(rd.r.component()),
                                            fleet::toJson(rd.r), rd.exists ? rd.modRevision : 0);
  if (!ok.ok()) return ok.status();
  if (!*ok) return absl::AbortedError("the rollout was changed by someone else meanwhile");
  auto again = loadRollout(env, rd.r.component());  // the new revision, for the next write
  if (!again.ok()) return again.status();
  rd = *again;
  return absl::OkStatus();
}

}  // namespace qtls::ctl
