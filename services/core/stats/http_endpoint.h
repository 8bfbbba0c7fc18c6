// GET /metrics over HTTP on its own address and thread (cpp-httplib from Debian). Read-only;
// anything else is 404.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "stats/metrics.h"

namespace httplib {
class Server;
}

namespace qtls::stats {

class HttpEndpoint {
 public:
  explicit HttpEndpoint(Registry& registry);
  ~HttpEndpoint();
  // "127.0.0.1:9741" (port 0 picks a free one); returns the bound "host:port".
  absl::StatusOr<std::string> start(const std::string& listen);
  // The daemons' --metrics-listen: "none" serves nothing; otherwise start() and log
  // "metrics listen=<bound>". An address already taken is an error: another daemon holds it,
  // and scrapes would read that one's figures.
  absl::Status serve(const std::string& listen);
  void stop();

 private:
  Registry& registry_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace qtls::stats
