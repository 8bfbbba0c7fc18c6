// Every report text of spec 2.8 and 3.7, byte for byte.
#include "outcome.h"

#include <gtest/gtest.h>

namespace qtls::remoted {
namespace {

const std::string kIp = "192.0.2.7";
smtp::Reply reply(int code, std::string text) { return smtp::Reply{code, std::move(text)}; }

TEST(Report, RecordsAndExactlyOneFinal) {
  Report r;
  r.recipient('r', "");
  r.recipient('h', kIp + " does not like recipient.\nRemote host said: 550 no\n");
  r.finish('K', "x\n");
  r.finish('Z', "ignored\n");
  EXPECT_EQ(r.bytes(), std::string("r\0h192.0.2.7 does not like recipient.\nRemote host said: 550 "
                                   "no\n\0Kx\n\0",
                                   68));
}

TEST(Texts, Dialogue) {
  auto said = remoteSaid(reply(421, "421 busy\n"));
  EXPECT_EQ(connectedText("Connected to ", kIp, " but greeting failed", said),
            "Connected to 192.0.2.7 but greeting failed.\nRemote host said: 421 busy\n");
  EXPECT_EQ(connectedText("Connected to ", kIp, " but my name was rejected", ""),
            "Connected to 192.0.2.7 but my name was rejected.\n");
  EXPECT_EQ(connectedText("Connected to ", kIp, " but sender was rejected",
                          remoteSaid(reply(553, "553 no\n"))),
            "Connected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n");
  EXPECT_EQ(connectedText("Giving up on ", kIp, "", ""), "Giving up on 192.0.2.7.\n");
  EXPECT_EQ(connectedText("", kIp, " failed on DATA command", remoteSaid(reply(554, "554 x\n"))),
            "192.0.2.7 failed on DATA command.\nRemote host said: 554 x\n");
  EXPECT_EQ(connectedText("", kIp, " failed after I sent the message",
                          remoteSaid(reply(451, "451 later\n"))),
            "192.0.2.7 failed after I sent the message.\nRemote host said: 451 later\n");
  EXPECT_EQ(connectedText("", kIp, " accepted message", remoteSaid(reply(250, "250 ok 1\n"))),
            "192.0.2.7 accepted message.\nRemote host said: 250 ok 1\n");
  EXPECT_EQ(connectedText("TLS Connected to ", kIp, " but greeting failed", ""),
            "TLS Connected to 192.0.2.7 but greeting failed.\n");
}

TEST(Texts, ConnectionDied) {
  EXPECT_EQ(diedText(kIp, false), "Connected to 192.0.2.7 but connection died. (#4.4.2)\n");
  EXPECT_EQ(diedText(kIp, true),
            "Connected to 192.0.2.7 but connection died. Possible duplicate! (#4.4.2)\n");
}

TEST(Texts, RemoteTextShowsNulAsQuestionMark) {
  EXPECT_EQ(remoteSaid(reply(550, std::string("550 a\0b\n", 8))), "Remote host said: 550 a?b\n");
  EXPECT_EQ(remoteSaid(reply(250, "")), "");
}

TEST(Texts, TlsFailures) {
  const std::string pem = "control/tlshosts/mx.example.com.pem";
  EXPECT_EQ(tlsText("No TLS achieved while " + pem + " exists", "", false, kIp),
            "No TLS achieved while control/tlshosts/mx.example.com.pem exists; connecting to "
            "192.0.2.7.\n");
  EXPECT_EQ(tlsText("TLS error initializing ctx", "err", false, kIp),
            "TLS error initializing ctx: err; connecting to 192.0.2.7.\n");
  EXPECT_EQ(tlsText("TLS unable to load " + pem, "err", false, kIp),
            "TLS unable to load control/tlshosts/mx.example.com.pem: err; connecting to "
            "192.0.2.7.\n");
  EXPECT_EQ(tlsText("TLS error initializing ssl", "", false, kIp),
            "TLS error initializing ssl; connecting to 192.0.2.7.\n");
  EXPECT_EQ(tlsText("STARTTLS rejected while " + pem + " exists", "", false, kIp,
                    remoteSaid(reply(454, "454 no tls\n"))),
            "STARTTLS rejected while control/tlshosts/mx.example.com.pem exists; connecting to "
            "192.0.2.7.\nRemote host said: 454 no tls\n");
  EXPECT_EQ(tlsText("TLS connect failed", "Connection timed out", true, kIp),
            "TLS connect failed: Connection timed out; connected to 192.0.2.7.\n");
  EXPECT_EQ(
      tlsText("TLS unable to verify server with " + pem, "certificate has expired", true, kIp),
      "TLS unable to verify server with control/tlshosts/mx.example.com.pem: certificate has "
      "expired; connected to 192.0.2.7.\n");
  EXPECT_EQ(
      tlsText("TLS unable to verify server mx.example.com", "no certificate provided", true, kIp),
      "TLS unable to verify server mx.example.com: no certificate provided; connected to "
      "192.0.2.7.\n");
  EXPECT_EQ(tlsText("TLS unable to verify server mx.example.com",
                    "certificate contains no valid commonName", true, kIp),
            "TLS unable to verify server mx.example.com: certificate contains no valid commonName; "
            "connected to 192.0.2.7.\n");
  EXPECT_EQ(tlsText("TLS unable to verify server mx.example.com",
                    "received certificate for other.example.com", true, kIp),
            "TLS unable to verify server mx.example.com: received certificate for "
            "other.example.com; connected to 192.0.2.7.\n");
  EXPECT_EQ(tlsText("TLS unable to verify server mx.example.com",
                    "certificate contains no matching dNSNnames", true, kIp),
            "TLS unable to verify server mx.example.com: certificate contains no matching "
            "dNSNnames; connected to 192.0.2.7.\n");
}

TEST(Texts, DnsAndFixed) {
  EXPECT_EQ(permDnsText("nx.example"),
            "Sorry, I couldn't find any host named nx.example. (#5.1.2)\n");
  EXPECT_EQ(permDnsText(std::string("a b\x01", 4)),
            "Sorry, I couldn't find any host named a?b?. (#5.1.2)\n");
  EXPECT_STREQ(kAmbigMx,
               "Sorry. Although I'm listed as a best-preference MX or A for that host,\n"
               "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n");
}

}  // namespace
}  // namespace qtls::remoted
