// Between the policy store's types and the admin API's messages: status codes, UTF-8-safe
// strings, and a change's result.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "admin/policy_store.h"
#include "qtls/v1/policy.pb.h"

namespace qtls::admin {

// The store's status as the API's: UNAVAILABLE (the store's disk trouble) becomes INTERNAL, so
// a client does not take it for "try another server".
grpc::Status toGrpc(const absl::Status& s);

// proto3 strings must be UTF-8 or the peer's parser refuses the whole message; HELO names,
// remote replies and hand-made file names are not. Invalid bytes become \xNN.
std::string utf8(const std::string& in);

void fillResult(const ChangeResult& r, v1::PolicyChangeResult* out);

}  // namespace qtls::admin
