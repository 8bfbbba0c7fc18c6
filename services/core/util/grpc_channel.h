// The channel arguments every gRPC client of ours starts from: qtlsctl's admin client and the
// etcd client of the daemons and of qtlsctl.
#pragma once

#include <grpc/grpc.h>
#include <grpcpp/support/channel_arguments.h>

namespace qtls::grpcutil {

inline grpc::ChannelArguments clientChannelArguments() {
  grpc::ChannelArguments args;
  // No gRPC retry filter. In Debian's gRPC 1.51 it asserts (abort) when a peer closes a
  // stream whose trailers carry no grpc-status, which happens when etcd or a daemon is stopped
  // mid-call (grpc/grpc#34683; seen as "optional<grpc_status_code>::operator*() ...
  // this->engaged_" from qtlsctl while etcd restarted). Our callers retry themselves: the etcd
  // client moves to the next member and backs off, qtlsctl reports the status.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return args;
}

}  // namespace qtls::grpcutil
