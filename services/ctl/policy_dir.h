// A policy on local disk in control/ layout: read for `policy apply --from` / `diff --from`,
// written as an exact mirror by `policy get --out`.
#pragma once

#include <map>
#include <string>

#include "qtls/v1/policy.pb.h"

namespace qtls::ctl {

// The files under `dir` that the daemon's policy owns (by its owned patterns); others are
// counted on stderr and ignored.
std::map<std::string, std::string> collect(const std::string& dir,
                                           const qtls::v1::GetPolicyResponse& current);

// Makes `dir` an exact mirror of `r`; returns an exit code (kOk, or kUsage for a directory
// that is not ours, kOther when a file cannot be written).
int mirrorInto(const std::string& dir, const qtls::v1::GetPolicyResponse& r);

}  // namespace qtls::ctl
