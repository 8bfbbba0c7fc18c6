// The admin API's TCP listeners. TLS is done here, not by gRPC, so that every refused
// handshake and every refused caller is logged with the address it came from (gRPC's own TLS
// tells its auth hooks the certificate but not the address).
//
// Each connection: OpenSSL handshake (client certificate required and verified against the
// admin client CA, ALPN h2, a 10 s limit), the certificate's identities (CN and
// subjectAltNames) looked up in the allow-list, then the plaintext is passed through a
// socketpair to a gRPC server (grpc::AddInsecureChannelFromFd): the admin server for a listed
// identity, the refusing server for anyone else, so that an unlisted identity reaches no
// service at all, health and reflection included. Calls find out who is on the other end with
// peerOf(ServerContext::peer()).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "tls/ssl_ptr.h"

namespace grpc {
class Server;
class CallbackGenericService;
}  // namespace grpc

namespace qtls::admin {

struct TlsPeer {
  std::string address;                  // "ipv4:127.0.0.1:40522", as gRPC writes peers
  std::vector<std::string> identities;  // CN and subjectAltNames of the client certificate
  std::string identity;                 // the one found in the allow-list; "" if none
  bool write = false;
};

class TlsFront {
 public:
  // identity -> may write
  TlsFront(tls::SslCtxSharedPtr ctx, std::map<std::string, bool> allow);
  ~TlsFront();
  TlsFront(const TlsFront&) = delete;
  TlsFront& operator=(const TlsFront&) = delete;

  // Server context for the admin listener: certificate and key, the client CA, client
  // certificates required, TLS 1.2 or later (tls/server_context.h builds it), ALPN h2 (gRPC
  // clients insist on it).
  static absl::StatusOr<tls::SslCtxSharedPtr> makeContext(const std::string& certPem,
                                                          const std::string& keyPem,
                                                          const std::string& clientCaPem);

  // Binds "host:port" or "[v6]:port"; returns the address bound ("127.0.0.1:40123").
  absl::StatusOr<std::string> listen(const std::string& hostPort);
  // Called for each call refused because the identity is not listed, with the gRPC method
  // and the answer's message, before the answer goes out.
  using OnRefused =
      std::function<void(const TlsPeer&, const std::string& method, const std::string& why)>;
  // Accepts on every bound listener; listed callers go to `admin`, others to a server of
  // ours that answers every call PERMISSION_DENIED and has no other service.
  absl::Status start(grpc::Server* admin, OnRefused onRefused);
  // Closes the listeners and every connection; returns once no thread of ours is left.
  void stop();

  // Who is behind a gRPC peer string ("fd:17"); nullopt for anything that did not come
  // through this front.
  std::optional<TlsPeer> peerOf(const std::string& grpcPeer) const;

  static constexpr int kMaxConnections = 64;

 private:
  void acceptLoop(int listenFd);
  void serve(int fd, std::string address);
  void pump(SSL* ssl, int tcp, int plain);
  void finished();

  tls::SslCtxSharedPtr ctx_;
  std::map<std::string, bool> allow_;
  OnRefused onRefused_;
  std::unique_ptr<grpc::CallbackGenericService> refuser_;
  std::unique_ptr<grpc::Server> refuse_;
  std::vector<int> listeners_;
  std::vector<std::thread> acceptors_;
  int stopPipe_[2] = {-1, -1};
  grpc::Server* admin_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable idle_;
  int connections_ = 0;                   // threads serving a connection
  std::map<std::string, TlsPeer> peers_;  // gRPC peer string -> who
};

}  // namespace qtls::admin
