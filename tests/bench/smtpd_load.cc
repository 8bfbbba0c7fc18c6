// Load generator for qtls-smtpd: N concurrent clients for a fixed time, each either opening a
// new STARTTLS session per message (sessions/s) or sending many messages over one TLS session
// (messages/s). It can also hold N idle TLS sessions open (to measure the server's memory per
// connection). Reuses qtls-remoted's SMTP client connection.
//
//   smtpd_load --port P --clients N --seconds S --mode sessions|messages|idle [--size BYTES]
#include <openssl/ssl.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "smtp_conn.h"
#include "tls/ssl_ptr.h"

using namespace qtls;
using Clock = std::chrono::steady_clock;

struct Options {
  unsigned short port = 25;
  int clients = 1;
  double seconds = 5;
  std::string mode = "sessions";
  size_t size = 2048;
};

struct Totals {
  long sessions = 0, messages = 0, errors = 0;
};

static std::string body(size_t size) {
  std::string b = "Subject: load\n\n";
  while (b.size() + 80 < size) b += std::string(78, 'x') + "\r\n";
  return b;
}

static asio::awaitable<bool> ok(remoted::SmtpConn& c, std::string_view cmd, int want) {
  if (!cmd.empty()) {
    if (co_await c.write(cmd)) co_return false;
  }
  auto r = co_await c.readReply();
  co_return r.ok() && r.reply.code == want;
}

static asio::awaitable<bool> openTls(std::shared_ptr<remoted::SmtpConn> c, SSL_CTX* ctx,
                                     unsigned short port) {
  asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  if (co_await c->connect(ep, std::chrono::seconds(10))) co_return false;
  c->setTimeout(std::chrono::seconds(30));
  if (!co_await ok(*c, "", 220)) co_return false;
  if (!co_await ok(*c, "EHLO load.test\r\n", 250)) co_return false;
  if (!co_await ok(*c, "STARTTLS\r\n", 220)) co_return false;
  size_t discarded = 0;
  if (co_await c->handshake(tls::SslPtr(SSL_new(ctx)), discarded)) co_return false;
  co_return co_await ok(*c, "EHLO load.test\r\n", 250);
}

static asio::awaitable<bool> sendMessage(remoted::SmtpConn& c, const std::string& data) {
  if (!co_await ok(c, "MAIL FROM:<load@load.test>\r\n", 250)) co_return false;
  if (!co_await ok(c, "RCPT TO:<u@agent.test>\r\n", 250)) co_return false;
  if (!co_await ok(c, "DATA\r\n", 354)) co_return false;
  co_return co_await ok(c, data, 250);
}

static asio::awaitable<void> client(const Options& o, SSL_CTX* ctx, Clock::time_point end,
                                    Totals& t, std::string data, std::atomic<int>& idleReady) {
  auto ex = co_await asio::this_coro::executor;
  if (o.mode == "idle") {
    auto c = std::make_shared<remoted::SmtpConn>(ex);
    if (co_await openTls(c, ctx, o.port))
      ++idleReady;
    else
      ++t.errors;
    asio::steady_timer hold(ex, end);
    co_await hold.async_wait(asio::use_awaitable);
    co_return;
  }
  while (Clock::now() < end) {
    auto c = std::make_shared<remoted::SmtpConn>(ex);
    if (!co_await openTls(c, ctx, o.port)) {
      ++t.errors;
      continue;
    }
    do {
      if (!co_await sendMessage(*c, data)) {
        ++t.errors;
        break;
      }
      ++t.messages;
    } while (o.mode == "messages" && Clock::now() < end);
    (void)co_await ok(*c, "QUIT\r\n", 221);
    c->close();
    ++t.sessions;
  }
}

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--port")
      o.port = static_cast<unsigned short>(std::stoi(v));
    else if (a == "--clients")
      o.clients = std::stoi(v);
    else if (a == "--seconds")
      o.seconds = std::stod(v);
    else if (a == "--mode")
      o.mode = v;
    else if (a == "--size")
      o.size = std::stoul(v);
  }
  tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);  // full handshakes only
  asio::io_context io;
  Totals t;
  std::atomic<int> idleReady{0};
  std::string data = body(o.size);
  std::string wire;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) wire += '\r';
    wire += data[i];
  }
  wire += ".\r\n";
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  for (int i = 0; i < o.clients; ++i)
    asio::co_spawn(io, client(o, ctx.get(), end, t, wire, idleReady), asio::detached);
  // Idle mode: report once every connection is up, then keep them open until the end.
  asio::steady_timer tick(io);
  std::function<void(std::error_code)> poll;
  if (o.mode == "idle") {
    poll = [&](std::error_code) {
      if (idleReady + t.errors >= o.clients) {
        std::printf("idle TLS sessions open: %d (errors %ld)\n", idleReady.load(), t.errors);
        std::fflush(stdout);
        return;
      }
      tick.expires_after(std::chrono::milliseconds(20));
      tick.async_wait(poll);
    };
    poll({});
  }
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (o.mode != "idle")
    std::printf(
        "mode=%s clients=%d seconds=%.1f sessions=%ld (%.1f/s) messages=%ld (%.1f/s) errors=%ld\n",
        o.mode.c_str(), o.clients, secs, t.sessions, t.sessions / secs, t.messages,
        t.messages / secs, t.errors);
  return t.errors == 0 ? 0 : 1;
}
