// The failure table (failure_table.h): every row, with its exact bytes, its next step, what
// becomes of the connection, its TLS-RPT type and its metric reason; the report it makes.
#include "report/failure_table.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "delivery_control.h"
#include "metrics.h"
#include "outcome.h"

namespace qtls::remoted {
namespace {

using namespace std::string_literals;

const std::string kIp = "192.0.2.7";
const std::string kPem = "control/tlshosts/mx.example.com.pem";
const std::string kSentence = kPem + " exists";
const std::string kNulReply = "250 a\0b\n"s;  // EndingContext holds views: these outlive it

struct Case {
  EndingContext c;
  std::string record;  // letter, text, NUL ("" for none)
};

EndingContext at(int code = 0, std::string_view said = "") {
  EndingContext c;
  c.ip = kIp;
  c.code = code;
  c.said = said;
  return c;
}
template <typename F>
EndingContext with(EndingContext c, F f) {
  f(c);
  return c;
}

// Every row's cases: the test below fails for a row that has none.
std::map<Failure, std::vector<Case>> cases() {
  return {
      {Failure::kNone, {{{}, ""}}},
      {Failure::kDnsTemp, {{{}, "ZSorry, I couldn't find any host by that name. (#4.1.2)\n\0"s}}},
      {Failure::kNoMx,
       {{{}, "DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n\0"s}}},
      {Failure::kDnsPerm,
       {{with(EndingContext{}, [](auto& c) { c.arg = "nx.example"; }),
         "DSorry, I couldn't find any host named nx.example. (#5.1.2)\n\0"s},
        {with(EndingContext{}, [](auto& c) { c.arg = "a b\x01"; }),
         "DSorry, I couldn't find any host named a?b?. (#5.1.2)\n\0"s}}},
      {Failure::kAmbiguousMx,
       {{{},
         "DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
         "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n\0"s}}},
      {Failure::kTcptoSkipped, {{at(), ""}}},
      {Failure::kConnectFailed, {{at(), ""}}},
      {Failure::kBusy,
       {{with(at(), [](auto& c) { c.seconds = 0.1; }),
         "ZSorry, too many connections to 192.0.2.7 are in use; none came free within 0.1 "
         "seconds. (#4.4.5)\n\0"s},
        {with(at(), [](auto& c) { c.seconds = 60; }),
         "ZSorry, too many connections to 192.0.2.7 are in use; none came free within 60 "
         "seconds. (#4.4.5)\n\0"s}}},
      {Failure::kReusedDead, {{at(), ""}}},
      {Failure::kNoConnection,
       {{{}, "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"s}}},
      {Failure::kGreeting,
       {{at(421, "421 busy\n"),
         "ZConnected to 192.0.2.7 but greeting failed.\nRemote host said: 421 busy\n\0"s},
        {at(554, "554 go away\n"),  // a 5xx greeting is deferred too
         "ZConnected to 192.0.2.7 but greeting failed.\nRemote host said: 554 go away\n\0"s}}},
      {Failure::kGreetingTls, {{at(), "ZTLS Connected to 192.0.2.7 but greeting failed.\n\0"s}}},
      {Failure::kHelo, {{at(550), "ZConnected to 192.0.2.7 but my name was rejected.\n\0"s}}},
      {Failure::kStarttlsNotOffered,
       {{with(at(), [&](auto& c) { c.arg = kSentence; }),
         "ZNo TLS achieved while control/tlshosts/mx.example.com.pem exists; connecting to "
         "192.0.2.7.\n\0"s}}},
      {Failure::kCaUnusable,
       {{with(at(),
              [&](auto& c) {
                c.arg = kPem;
                c.err = "err";
              }),
         "ZTLS unable to load control/tlshosts/mx.example.com.pem: err; connecting to "
         "192.0.2.7.\n\0"s}}},
      {Failure::kTlsInitCtx,
       {{with(at(), [](auto& c) { c.err = "err"; }),
         "ZTLS error initializing ctx: err; connecting to 192.0.2.7.\n\0"s}}},
      {Failure::kTlsInitSsl,
       {{at(), "ZTLS error initializing ssl; connecting to 192.0.2.7.\n\0"s}}},
      {Failure::kStarttlsRejected,
       {{with(at(454, "454 no tls\n"), [&](auto& c) { c.arg = kSentence; }),
         "ZSTARTTLS rejected while control/tlshosts/mx.example.com.pem exists; connecting to "
         "192.0.2.7.\nRemote host said: 454 no tls\n\0"s}}},
      {Failure::kTlsHandshake,
       {{with(at(), [](auto& c) { c.err = "Connection timed out"; }),
         "ZTLS connect failed: Connection timed out; connected to 192.0.2.7.\n\0"s}}},
      {Failure::kPeerUntrusted,
       {{with(at(),
              [&](auto& c) {
                c.arg = kPem;
                c.err = "unable to get local issuer certificate";
              }),
         "ZTLS unable to verify server with control/tlshosts/mx.example.com.pem: unable to get "
         "local issuer certificate; connected to 192.0.2.7.\n\0"s}}},
      {Failure::kPeerExpired,
       {{with(at(),
              [&](auto& c) {
                c.arg = kPem;
                c.err = "certificate has expired";
              }),
         "ZTLS unable to verify server with control/tlshosts/mx.example.com.pem: certificate has "
         "expired; connected to 192.0.2.7.\n\0"s}}},
      {Failure::kPeerNoCertificate,
       {{with(at(), [](auto& c) { c.arg = "mx.example.com"; }),
         "ZTLS unable to verify server mx.example.com: no certificate provided; connected to "
         "192.0.2.7.\n\0"s}}},
      {Failure::kPeerPinMismatch,
       {{with(at(),
              [](auto& c) {
                c.arg = "mx.example.com";
                c.n = 3;
              }),
         "ZTLS unable to verify server mx.example.com: certificate matches no fingerprint of "
         "control/tlspolicy line 3; connected to 192.0.2.7.\n\0"s}}},
      {Failure::kPeerNoName,
       {{at(),
         "ZTLS unable to verify server 192.0.2.7: no host name to check; connected to "
         "192.0.2.7.\n\0"s}}},
      {Failure::kPeerNoCommonName,
       {{with(at(), [](auto& c) { c.arg = "mx.example.com"; }),
         "ZTLS unable to verify server mx.example.com: certificate contains no valid commonName; "
         "connected to 192.0.2.7.\n\0"s}}},
      {Failure::kPeerCnMismatch,
       {{with(at(),
              [](auto& c) {
                c.arg = "mx.example.com";
                c.detail = "other example\n";
              }),
         "ZTLS unable to verify server mx.example.com: received certificate for "
         "other?example?; connected to 192.0.2.7.\n\0"s}}},
      {Failure::kPeerSanMismatch,
       {{with(at(), [](auto& c) { c.arg = "mx.example.com"; }),
         "ZTLS unable to verify server mx.example.com: certificate contains no matching "
         "dNSNnames; connected to 192.0.2.7.\n\0"s}}},
      {Failure::kMailRefused,
       {{at(553, "553 no\n"),
         "DConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n\0"s},
        {at(451, "451 later\n"),
         "ZConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 451 later\n\0"s}}},
      {Failure::kRcptAccepted, {{at(250, "250 ok\n"), "r\0"s}}},
      {Failure::kRcptRefused,
       {{at(550, "550 no\n"), "h192.0.2.7 does not like recipient.\nRemote host said: 550 no\n\0"s},
        {at(450, "450 later\n"),
         "s192.0.2.7 does not like recipient.\nRemote host said: 450 later\n\0"s}}},
      {Failure::kNoRecipients, {{at(), "DGiving up on 192.0.2.7.\n\0"s}}},
      {Failure::kDataRefused,
       {{at(554, "554 x\n"), "D192.0.2.7 failed on DATA command.\nRemote host said: 554 x\n\0"s},
        {at(451, "451 x\n"), "Z192.0.2.7 failed on DATA command.\nRemote host said: 451 x\n\0"s}}},
      {Failure::kDotRefused,
       {{at(451, "451 later\n"),
         "Z192.0.2.7 failed after I sent the message.\nRemote host said: 451 later\n\0"s},
        {at(554, "554 no\n"),
         "D192.0.2.7 failed after I sent the message.\nRemote host said: 554 no\n\0"s},
        {at(354, "354 go\n"),  // only a 2xx is a delivery
         "Z192.0.2.7 failed after I sent the message.\nRemote host said: 354 go\n\0"s}}},
      {Failure::kDotAccepted,
       {{at(250, "250 ok 1\n"), "K192.0.2.7 accepted message.\nRemote host said: 250 ok 1\n\0"s},
        {at(250, kNulReply),  // the report is NUL-terminated: a NUL shows as '?'
         "K192.0.2.7 accepted message.\nRemote host said: 250 a?b\n\0"s},
        {at(250, ""), "K192.0.2.7 accepted message.\n\0"s}}},
      {Failure::kReadMessage, {{at(), "ZUnable to read message. (#4.3.0)\n\0"s}}},
      {Failure::kPartialLine,
       {{at(), "DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n\0"s}}},
      {Failure::kDied,
       {{at(), "ZConnected to 192.0.2.7 but connection died. (#4.4.2)\n\0"s},
        {with(at(), [](auto& c) { c.afterDot = true; }),
         "ZConnected to 192.0.2.7 but connection died. Possible duplicate! (#4.4.2)\n\0"s}}},
      {Failure::kMalformed,
       {{with(at(), [](auto& c) { c.detail = "more than one reply at once"; }),
         "ZConnected to 192.0.2.7 but the reply was malformed (more than one reply at once). "
         "(#4.4.2)\n\0"s},
        {with(at(),
              [](auto& c) {
                c.detail = "DATA answered with 250, not 354";
                c.afterDot = true;
              }),
         "ZConnected to 192.0.2.7 but the reply was malformed (DATA answered with 250, not 354). "
         "Possible duplicate! (#4.4.2)\n\0"s}}},
      {Failure::kDeadlineEarly,
       {{with(EndingContext{}, [](auto& c) { c.n = 300; }),
         "ZSorry, the delivery took longer than 300 seconds. (#4.4.1)\n\0"s}}},
      {Failure::kDeadline,
       {{with(at(), [](auto& c) { c.n = 300; }),
         "ZConnected to 192.0.2.7 but the delivery took longer than 300 seconds. (#4.4.2)\n\0"s}}},
      {Failure::kShutdownEarly,
       {{{}, "Zqtls-remoted stopped before the delivery was made. (#4.3.0)\n\0"s}}},
      {Failure::kShutdown,
       {{with(at(), [](auto& c) { c.afterDot = true; }),
         "ZConnected to 192.0.2.7 but qtls-remoted stopped during the delivery. Possible "
         "duplicate! (#4.3.0)\n\0"s}}},
      {Failure::kShimGoneEarly,
       {{{}, "Zqtls-remote went away; delivery abandoned. (#4.3.0)\n\0"s}}},
      {Failure::kShimGone,
       {{at(),
         "ZConnected to 192.0.2.7 but qtls-remote went away; delivery abandoned. (#4.3.0)\n\0"s}}},
      {Failure::kInternal,
       {{with(at(),
              [](auto& c) {
                c.arg = "bad\nthing";
                c.afterDot = true;
              }),
         "Zqtls-remoted: internal error during the delivery: bad?thing. Possible duplicate! "
         "(#4.3.0)\n\0"s},
        {with(EndingContext{}, [](auto& c) { c.arg = std::string_view("x y", 3); }),
         "Zqtls-remoted: internal error during the delivery: x y. (#4.3.0)\n\0"s}}},
      {Failure::kIntakeUid,
       {{with(EndingContext{}, [](auto& c) { c.n = 1234; }),
         "Zqtls-remoted refused uid 1234: not in its allow-list. (#4.3.0)\n\0"s}}},
      {Failure::kIntakeBusy,
       {{with(EndingContext{}, [](auto& c) { c.n = 8; }),
         "Zqtls-remoted has 8 deliveries in progress (--max-deliveries). (#4.3.0)\n\0"s}}},
      {Failure::kIntakeTooLarge, {{{}, "Zqtls-remoted: request too large. (#4.3.0)\n\0"s}}},
      {Failure::kIntakeMalformed,
       {{with(EndingContext{}, [](auto& c) { c.arg = "no recipients"; }),
         "Zqtls-remoted: malformed request: no recipients. (#4.3.0)\n\0"s}}},
      {Failure::kIntakeNoFd,
       {{{}, "Zqtls-remoted: no message file descriptor received. (#4.3.0)\n\0"s}}},
      {Failure::kShimUsage, {{{}, "DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0"s}}},
      {Failure::kShimNoHome, {{{}, "ZUnable to switch to home directory. (#4.3.0)\n\0"s}}},
      {Failure::kShimOutOfMemory, {{{}, "ZOut of memory. (#4.3.0)\n\0"s}}},
      {Failure::kShimReadMessage, {{{}, "ZUnable to read message. (#4.3.0)\n\0"s}}},
      {Failure::kShimTooLarge,
       {{{}, "DToo many recipients or addresses too long for qtls-remote. (#5.3.5)\n\0"s}}},
      {Failure::kDaemonTrouble,
       {{with(EndingContext{},
              [](auto& c) {
                c.arg = "unable to connect to";
                c.path = "/run/qtls/remoted.sock";
                c.err = "No such file or directory";
              }),
         "Zqtls-remote: unable to connect to qtls-remoted at /run/qtls/remoted.sock: No such "
         "file or directory. (#4.3.0)\n\0"s},
        {with(EndingContext{},
              [](auto& c) {
                c.arg = "malformed answer from";
                c.path = "/run/qtls/remoted.sock";
              }),
         "Zqtls-remote: malformed answer from qtls-remoted at /run/qtls/remoted.sock. "
         "(#4.3.0)\n\0"s}}},
      {Failure::kDaemonTroubleAfterDot,
       {{with(at(),
              [](auto& c) {
                c.arg = "lost contact with";
                c.path = "/run/qtls/remoted.sock";
                c.err = "daemon stopped or crashed";
              }),
         "ZConnected to 192.0.2.7 but connection died. qtls-remote: lost contact with "
         "qtls-remoted at /run/qtls/remoted.sock: daemon stopped or crashed, after the final "
         "dot. Possible duplicate! (#4.4.2)\n\0"s}}},
      {Failure::kSpawnDelnumTooBig, {{{}, "ZInternal error: delnum too big. (#4.3.5)\n\0"s}}},
      {Failure::kSpawnDelnumInUse, {{{}, "ZInternal error: delnum in use. (#4.3.5)\n\0"s}}},
      {Failure::kSpawnMessidNonnumeric,
       {{{}, "DInternal error: messid has nonnumerics. (#5.3.5)\n\0"s}}},
      {Failure::kSpawnMessidTooLong, {{{}, "DInternal error: messid too long. (#5.3.5)\n\0"s}}},
      {Failure::kSpawnMessidTooShort, {{{}, "DInternal error: messid too short. (#5.3.5)\n\0"s}}},
      {Failure::kSpawnNoHost, {{{}, "DSorry, address must include host name. (#5.1.3)\n\0"s}}},
      {Failure::kSpawnOpen, {{{}, "Zqmail-spawn unable to open message. (#4.3.0)\n\0"s}}},
      {Failure::kSpawnFstat, {{{}, "Zqmail-spawn unable to fstat message. (#4.3.0)\n\0"s}}},
      {Failure::kSpawnWrongType, {{{}, "ZSorry, message has wrong type. (#4.3.5)\n\0"s}}},
      {Failure::kSpawnWrongOwner, {{{}, "ZSorry, message has wrong owner. (#4.3.5)\n\0"s}}},
      {Failure::kSpawnNoOutput, {{{}, "Zqmail-remote produced no output.\n\0"s}}},
  };
}

TEST(FailureTable, EveryRowHasItsExactBytes) {
  const auto all = cases();
  for (const FailureRow& row : failureTable()) {
    auto it = all.find(row.failure);
    ASSERT_TRUE(it != all.end()) << "no case for the row " << row.name;
    for (const Case& c : it->second)
      EXPECT_EQ(judge(row.failure, c.c).record(), c.record) << row.name;
  }
  EXPECT_EQ(all.size(), failureTable().size());
}

TEST(FailureTable, NamesAreUniqueAndTheOrderIsTheEnums) {
  std::set<std::string_view> names;
  size_t i = 0;
  for (const FailureRow& row : failureTable()) {
    EXPECT_EQ(static_cast<size_t>(row.failure), i++);
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
  }
}

TEST(FailureTable, WhereTheWalkGoesAndWhatBecomesOfTheConnection) {
  EXPECT_EQ(judge(Failure::kConnectFailed).next, Next::kNextAddress);
  EXPECT_EQ(judge(Failure::kTcptoSkipped).next, Next::kNextAddress);
  EXPECT_EQ(judge(Failure::kReusedDead).next, Next::kSameAddress);
  // qmail never tries another MX once a TCP connection is up.
  for (const FailureRow& row : failureTable())
    if (row.letter != 0 && row.failure != Failure::kRcptAccepted)
      EXPECT_EQ(row.next, Next::kStop) << row.name;
  EXPECT_EQ(judge(Failure::kHelo, at(550)).conn, Conn::kQuit);
  EXPECT_EQ(judge(Failure::kTlsHandshake).conn, Conn::kClose);
  EXPECT_EQ(judge(Failure::kDied).conn, Conn::kClose);
  EXPECT_EQ(judge(Failure::kPartialLine).conn, Conn::kClose);
  EXPECT_EQ(judge(Failure::kDotAccepted, at(250)).conn, Conn::kCache);
  // Replies still owed (a pipelined MAIL refused): closed, no QUIT.
  EXPECT_EQ(judge(Failure::kMailRefused, with(at(550), [](auto& c) { c.owed = true; })).conn,
            Conn::kClose);
  // A 421 during the transaction: a K goes to QUIT, not to the cache.
  EXPECT_EQ(
      judge(Failure::kDotAccepted, with(at(250), [](auto& c) { c.serverClosing = true; })).conn,
      Conn::kQuit);
}

TEST(FailureTable, ReasonsAreTheMetricsLabelSetAndTlsRowsHaveATlsrptType) {
  std::set<std::string_view> reasons;
  for (const FailureRow& row : failureTable())
    if (!row.reason.empty()) reasons.insert(row.reason);
  std::set<std::string_view> labels;
  for (const char* r : RemoteMetrics::kTlsFailureReasons) labels.insert(r);
  EXPECT_EQ(reasons, labels);
  EXPECT_EQ(rowOf(Failure::kStarttlsNotOffered).tlsrpt, "starttls-not-supported");
  EXPECT_EQ(rowOf(Failure::kPeerExpired).tlsrpt, "certificate-expired");
  EXPECT_EQ(rowOf(Failure::kPeerUntrusted).tlsrpt, "certificate-not-trusted");
  EXPECT_EQ(rowOf(Failure::kPeerSanMismatch).tlsrpt, "certificate-host-mismatch");
  EXPECT_EQ(rowOf(Failure::kTlsHandshake).tlsrpt, "validation-failure");
  EXPECT_EQ(rowOf(Failure::kDied).tlsrpt, "");
}

TEST(FailureTable, DocumentedRowByRowInCompatibilityMd) {
  std::ifstream in(std::string(QTLS_TEST_SOURCE_DIR) + "/../docs/compatibility.md");
  std::stringstream doc;
  doc << in.rdbuf();
  ASSERT_FALSE(doc.str().empty());
  for (const FailureRow& row : failureTable())
    EXPECT_NE(doc.str().find("| `" + std::string(row.name) + "` |"), std::string::npos)
        << row.name << " is not a row of docs/compatibility.md's failure table";
}

TEST(FailureTable, StopsByReasonAndPlace) {
  EXPECT_EQ(stopFailure(StopReason::kDeadline, true), Failure::kDeadline);
  EXPECT_EQ(stopFailure(StopReason::kDeadline, false), Failure::kDeadlineEarly);
  EXPECT_EQ(stopFailure(StopReason::kShutdown, true), Failure::kShutdown);
  EXPECT_EQ(stopFailure(StopReason::kShutdown, false), Failure::kShutdownEarly);
  EXPECT_EQ(stopFailure(StopReason::kShimGone, true), Failure::kShimGone);
  EXPECT_EQ(stopFailure(StopReason::kShimGone, false), Failure::kShimGoneEarly);
}

TEST(Report, RecordsAndExactlyOneFinal) {
  Report r;
  r.add(judge(Failure::kRcptAccepted, at(250)));
  r.add(judge(Failure::kRcptRefused, at(550, "550 no\n")));
  r.add(judge(Failure::kConnectFailed));  // no record
  r.add(judge(Failure::kDotAccepted, at(250, "250 ok\n")));
  r.add(judge(Failure::kDied, at()));  // a second final changes nothing
  EXPECT_EQ(r.bytes(),
            "r\0h192.0.2.7 does not like recipient.\nRemote host said: 550 no\n\0"
            "K192.0.2.7 accepted message.\nRemote host said: 250 ok\n\0"s);
  EXPECT_EQ(r.finalKind(), 'K');
  EXPECT_EQ(r.final().failure, Failure::kDotAccepted);
}

}  // namespace
}  // namespace qtls::remoted
