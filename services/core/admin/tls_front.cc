// The admin API's TCP listeners: our TLS in front of gRPC (tls_front.h).
#include "admin/tls_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/server_posix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "log/log.h"
#include "tls/errors.h"
#include "tls/server_context.h"
#include "util/host_port.h"
#include "util/text.h"

namespace qtls::admin {
namespace {

constexpr auto kHandshakeLimit = std::chrono::seconds(10);
constexpr size_t kBufferCap = 1 << 20;  // per direction, then back-pressure

std::string addressOf(const struct sockaddr_storage& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return text::cat("ipv4:", host, ":", ntohs(in->sin_port));
  }
  if (sa.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(&sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return text::cat("ipv6:[", host, "]:", ntohs(in6->sin6_port));
  }
  return "unknown";
}

void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string asn1Text(const ASN1_STRING* s) {
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// CN, then DNS, e-mail, URI and IP subjectAltNames: the names gRPC's TLS exposed, so
// allow-lists written for it keep working.
std::vector<std::string> identitiesOf(X509* cert) {
  std::vector<std::string> out;
  if (cert == nullptr) return out;
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;)
    out.push_back(asn1Text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i))));
  tls::GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
      out.push_back(asn1Text(g->d.ia5));
    } else if (g->type == GEN_IPADD) {
      char ip[INET6_ADDRSTRLEN] = "";
      const int len = ASN1_STRING_length(g->d.ip);
      if (len == 4 || len == 16)
        ::inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.ip), ip, sizeof ip);
      if (ip[0]) out.emplace_back(ip);
    }
  }
  return out;
}

int selectH2(SSL*, const unsigned char** out, unsigned char* outLen, const unsigned char* in,
             unsigned int inLen, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outLen, kH2, sizeof kH2, in, inLen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Takes every builder plugin away (reflection registers itself as one, process-wide): the
// refusing server must serve nothing.
class NoPlugins : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

// Every call, whatever its method: PERMISSION_DENIED, said once to the log and the audit.
class Refuser : public grpc::CallbackGenericService {
 public:
  explicit Refuser(const TlsFront& front, TlsFront::OnRefused onRefused)
      : front_(front), onRefused_(std::move(onRefused)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    TlsPeer peer = front_.peerOf(ctx->peer()).value_or(TlsPeer{ctx->peer(), {}, "", false});
    std::string ids;
    for (const std::string& id : peer.identities) ids += (ids.empty() ? "" : ",") + id;
    const std::string why = text::cat("client certificate identity ", ids.empty() ? "(none)" : ids,
                                      " is not on this daemon's admin allow-list");
    if (onRefused_) onRefused_(peer, ctx->method(), why);
    class Reactor : public grpc::ServerGenericBidiReactor {
     public:
      explicit Reactor(const std::string& why) {
        Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why));
      }
      void OnDone() override { delete this; }
    };
    return new Reactor(why);
  }

 private:
  const TlsFront& front_;
  TlsFront::OnRefused onRefused_;
};

}  // namespace

absl::StatusOr<tls::SslCtxSharedPtr> TlsFront::makeContext(const std::string& certPem,
                                                           const std::string& keyPem,
                                                           const std::string& clientCaPem) {
  tls::ServerTlsSpec spec;
  spec.certPem = certPem + "\n" + keyPem;
  spec.certName = "--admin-cert and --admin-key";
  spec.clientCaPem = clientCaPem;
  spec.clientCaName = "--admin-client-ca";
  spec.requireClientCert = true;  // mutual TLS or nothing
  spec.resumption = false;
  auto ctx = tls::buildServerContext(spec);
  if (!ctx.ok()) return ctx.status();
  SSL_CTX_set_alpn_select_cb(ctx->get(), selectH2, nullptr);
  SSL_CTX_set_mode(ctx->get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

TlsFront::TlsFront(tls::SslCtxSharedPtr ctx, std::map<std::string, bool> allow)
    : ctx_(std::move(ctx)), allow_(std::move(allow)) {
  if (::pipe2(stopPipe_, O_CLOEXEC) != 0) stopPipe_[0] = stopPipe_[1] = -1;
}

TlsFront::~TlsFront() {
  stop();
  for (int fd : stopPipe_)
    if (fd >= 0) ::close(fd);
}

absl::StatusOr<std::string> TlsFront::listen(const std::string& hostPort) {
  auto hp = text::parseHostPort(hostPort, "--admin-listen");
  if (!hp.ok()) return hp.status();
  const std::string& host = hp->host;
  const std::string port = std::to_string(hp->port);
  struct addrinfo hints {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      rc != 0)
    return absl::InvalidArgumentError(
        text::cat("--admin-listen ", hostPort, ": ", ::gai_strerror(rc)));
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
  int one = 1;
  const bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                  ::bind(fd, res->ai_addr, res->ai_addrlen) == 0 && ::listen(fd, 64) == 0;
  const int err = errno;
  ::freeaddrinfo(res);
  if (!ok) {
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(
        text::cat("cannot listen for admin on TCP ", hostPort, ": ", std::strerror(err)));
  }
  struct sockaddr_storage bound {};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &len);
  const int p = bound.ss_family == AF_INET6
                    ? ntohs(reinterpret_cast<struct sockaddr_in6*>(&bound)->sin6_port)
                    : ntohs(reinterpret_cast<struct sockaddr_in*>(&bound)->sin_port);
  listeners_.push_back(fd);
  return text::cat(host.find(':') != std::string::npos ? "[" + host + "]" : host, ":", p);
}

absl::Status TlsFront::start(grpc::Server* admin, OnRefused onRefused) {
  admin_ = admin;
  refuser_ = std::make_unique<Refuser>(*this, std::move(onRefused));
  grpc::ServerBuilder b;
  b.RegisterCallbackGenericService(refuser_.get());
  b.SetOption(std::make_unique<NoPlugins>());
  b.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
  refuse_ = b.BuildAndStart();
  if (!refuse_) return absl::InternalError("cannot start the admin API's refusing server");
  for (int fd : listeners_) acceptors_.emplace_back(&TlsFront::acceptLoop, this, fd);
  return absl::OkStatus();
}

void TlsFront::stop() {
  if (stopPipe_[1] >= 0) {
    ::close(stopPipe_[1]);  // every poll() of ours wakes up: the read end is at EOF
    stopPipe_[1] = -1;
  }
  for (std::thread& t : acceptors_) t.join();
  acceptors_.clear();
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return connections_ == 0; });
  lock.unlock();
  for (int fd : listeners_) ::close(fd);
  listeners_.clear();
  if (refuse_) {
    refuse_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    refuse_->Wait();
    refuse_.reset();
  }
}

std::optional<TlsPeer> TlsFront::peerOf(const std::string& grpcPeer) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = peers_.find(grpcPeer);
  if (it == peers_.end()) return std::nullopt;
  return it->second;
}

void TlsFront::acceptLoop(int listenFd) {
  for (;;) {
    struct pollfd p[2] = {{listenFd, POLLIN, 0}, {stopPipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    struct sockaddr_storage sa {};
    socklen_t len = sizeof sa;
    int fd = ::accept4(listenFd, reinterpret_cast<struct sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const std::string address = addressOf(sa);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (connections_ >= kMaxConnections) {
        log::warn(text::cat("admin: refused TCP connection from ", address, ": ", kMaxConnections,
                            " admin connections are open already"));
        ::close(fd);
        continue;
      }
      ++connections_;
    }
    std::thread(&TlsFront::serve, this, fd, address).detach();
  }
}

void TlsFront::finished() {
  std::lock_guard<std::mutex> lock(mu_);
  --connections_;
  idle_.notify_all();
}

void TlsFront::serve(int fd, std::string address) {
  struct Done {
    TlsFront* front;
    int fd;
    ~Done() {
      ::close(fd);
      front->finished();
    }
  } done{this, fd};
  setNonBlocking(fd);
  tls::SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return;
  SSL_set_fd(ssl.get(), fd);
  ERR_clear_error();
  const auto deadline = std::chrono::steady_clock::now() + kHandshakeLimit;
  std::string why;
  for (;;) {
    const int r = SSL_accept(ssl.get());
    if (r == 1) break;
    const int e = SSL_get_error(ssl.get(), r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      const long verify = SSL_get_verify_result(ssl.get());
      why = verify != X509_V_OK
                ? text::cat("client certificate: ", X509_verify_cert_error_string(verify))
                : tls::drainErrors();
      if (why.empty()) why = "connection closed during the handshake";
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      why = "no handshake within 10 seconds";
      break;
    }
    struct pollfd p[2] = {{fd, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0},
                          {stopPipe_[0], POLLIN, 0}};
    ::poll(p, 2, static_cast<int>(left.count()));
    if (p[1].revents) return;  // stopping
  }
  if (!why.empty()) {
    log::warn(text::cat("admin: refused TLS handshake from ", address, ": ", why));
    return;
  }

  TlsPeer peer;
  peer.address = address;
  peer.identities = identitiesOf(SSL_get0_peer_certificate(ssl.get()));
  for (const std::string& id : peer.identities) {
    auto it = allow_.find(id);
    if (it == allow_.end()) continue;
    peer.identity = id;
    peer.write = it->second;
    break;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
  setNonBlocking(sv[0]);
  setNonBlocking(sv[1]);
  const std::string key = text::cat("fd:", sv[1]);
  const bool listed = !peer.identity.empty();
  {
    std::lock_guard<std::mutex> lock(mu_);
    peers_[key] = peer;
  }
  // gRPC owns sv[1] from here; it is ours to name until gRPC closes it, which is after we
  // close sv[0] below.
  grpc::AddInsecureChannelFromFd(listed ? admin_ : refuse_.get(), sv[1]);
  pump(ssl.get(), fd, sv[0]);
  {
    std::lock_guard<std::mutex> lock(mu_);
    peers_.erase(key);
  }
  ::close(sv[0]);
}

// Moves bytes between the TLS connection and gRPC's end of the socketpair until either side
// is done or the front stops. Both descriptors are non-blocking; at most kBufferCap bytes wait
// in each direction before the other side is read no more.
void TlsFront::pump(SSL* ssl, int tcp, int plain) {
  std::string toPlain, toTls;
  char buf[16384];
  bool tlsEof = false, plainEof = false;
  for (;;) {
    bool progress = true;
    while (progress) {
      progress = false;
      if (!tlsEof && toPlain.size() < kBufferCap) {
        size_t n = 0;
        const int r = SSL_read_ex(ssl, buf, sizeof buf, &n);
        if (r == 1) {
          toPlain.append(buf, n);
          progress = true;
        } else {
          const int e = SSL_get_error(ssl, r);
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) tlsEof = true;
        }
      }
      if (!toPlain.empty()) {
        const ssize_t n = ::write(plain, toPlain.data(), toPlain.size());
        if (n > 0) {
          toPlain.erase(0, static_cast<size_t>(n));
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          return;
        }
      }
      if (!plainEof && toTls.size() < kBufferCap) {
        const ssize_t n = ::read(plain, buf, sizeof buf);
        if (n > 0) {
          toTls.append(buf, static_cast<size_t>(n));
          progress = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          plainEof = true;
        }
      }
      if (!toTls.empty()) {
        size_t n = 0;
        const int r = SSL_write_ex(ssl, toTls.data(), toTls.size(), &n);
        if (r == 1) {
          toTls.erase(0, n);
          progress = true;
        } else {
          const int e = SSL_get_error(ssl, r);
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return;
        }
      }
    }
    if (tlsEof && toPlain.empty()) return;  // the client is gone: gRPC sees EOF next
    if (plainEof && toTls.empty()) {        // gRPC closed the connection
      SSL_shutdown(ssl);
      return;
    }
    short tcpEvents = 0, plainEvents = 0;
    if (!tlsEof && toPlain.size() < kBufferCap) tcpEvents |= POLLIN;
    if (!toTls.empty()) tcpEvents |= POLLOUT;
    if (!plainEof && toTls.size() < kBufferCap) plainEvents |= POLLIN;
    if (!toPlain.empty()) plainEvents |= POLLOUT;
    // A side with nothing to wait for is left out: its hang-up would wake us in a loop.
    struct pollfd p[3] = {{tcpEvents ? tcp : -1, tcpEvents, 0},
                          {plainEvents ? plain : -1, plainEvents, 0},
                          {stopPipe_[0], POLLIN, 0}};
    if (::poll(p, 3, -1) < 0 && errno != EINTR) return;
    if (p[2].revents) return;
  }
}

}  // namespace qtls::admin
