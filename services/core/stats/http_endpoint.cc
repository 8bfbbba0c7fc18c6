// The /metrics HTTP endpoint.
#include "stats/http_endpoint.h"

#include <httplib.h>

#include "log/log.h"
#include "util/host_port.h"
#include "util/text.h"

namespace qtls::stats {

HttpEndpoint::HttpEndpoint(Registry& registry) : registry_(registry) {}
HttpEndpoint::~HttpEndpoint() { stop(); }

absl::StatusOr<std::string> HttpEndpoint::start(const std::string& listen) {
  auto hp = text::parseHostPort(listen, "metrics listener");
  if (!hp.ok()) return hp.status();
  const std::string& host = hp->host;
  const int port = static_cast<int>(hp->port);
  server_ = std::make_unique<httplib::Server>();
  // SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, with which a second daemon
  // on the same address starts silently and scrapes alternate between the two.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  int bound =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (bound < 0)
    return absl::UnavailableError(
        text::cat("metrics listener ", listen, ": cannot bind (address in use or not local)"));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return text::cat(listen.substr(0, listen.rfind(':')), ":", bound);  // as given, the port bound
}

absl::Status HttpEndpoint::serve(const std::string& listen) {
  if (listen == "none") return absl::OkStatus();
  auto where = start(listen);
  if (!where.ok()) return where.status();
  log::info(text::cat("metrics listen=", *where));
  return absl::OkStatus();
}

void HttpEndpoint::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace qtls::stats
