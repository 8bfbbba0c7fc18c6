// The delivery's own rules: its deadline, exceptions turned into reports, the texts of a
// delivery stopped from outside, and qmail's verdict on a report.
#include "delivery.h"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <stdexcept>

#include "outcome.h"

namespace qtls::remoted {
namespace {

TEST(DeliveryLimit, FromTimeoutsAndRecipientsCapped) {
  RemoteConfig cfg;
  cfg.timeoutConnect = 60;
  cfg.timeoutRemote = 1200;
  EXPECT_EQ(deliveryLimitSeconds(cfg, 1, 1000000), 60 * 5 + 1200 * 11);
  EXPECT_EQ(deliveryLimitSeconds(cfg, 3, 1000000), 60 * 5 + 1200 * 13);
  EXPECT_EQ(deliveryLimitSeconds(cfg, 1, 3600), 3600);
  cfg.timeoutConnect = 1;
  cfg.timeoutRemote = 1;
  EXPECT_EQ(deliveryLimitSeconds(cfg, 1, 3600), 16);
}

std::string run(asio::awaitable<void> body) {
  asio::io_context io;
  std::string got = "not run";
  asio::co_spawn(io, exceptionFrom(std::move(body)),
                 [&](std::exception_ptr, std::string s) { got = std::move(s); });
  io.run();
  return got;
}

TEST(ExceptionFrom, TextOfWhatEscaped) {
  EXPECT_EQ(run([]() -> asio::awaitable<void> { co_return; }()), "");
  EXPECT_EQ(run([]() -> asio::awaitable<void> {
              throw std::runtime_error("boom");
              co_return;
            }()),
            "boom");
  EXPECT_EQ(run([]() -> asio::awaitable<void> {
              throw 42;
              co_return;
            }()),
            "unknown exception");
}

TEST(QmailVerdict, Rspawn13) {
  using namespace std::string_literals;
  EXPECT_EQ(qmailVerdict("r\0Kok\n\0"s), 'K');
  EXPECT_EQ(qmailVerdict("s450\n\0s450\n\0DGiving up\n\0"s), 'Z');  // first byte decides
  EXPECT_EQ(qmailVerdict("h550\n\0DGiving up\n\0"s), 'D');
  EXPECT_EQ(qmailVerdict("r\0s450\n\0Kok\n\0"s), 'K');
  EXPECT_EQ(qmailVerdict("r\0"s), 'D');  // no K/Z/D record
  EXPECT_EQ(qmailVerdict(""), 'Z');
}

}  // namespace
}  // namespace qtls::remoted
