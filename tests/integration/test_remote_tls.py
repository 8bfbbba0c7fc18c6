"""Outbound TLS under qmail-tls policy: Postfix as a real STARTTLS sink, and scripted TLS
servers (Python's ssl on real sockets) for every failure of spec 3.7. Each asserts the exact
report bytes."""
import os
import re
import signal
import ssl
import unittest

from harness import RemoteTestCase, certs, server_context, wait_for
from postfix_sink import PostfixSink

ARGV = ("example.test", "a@sender.test", "u@example.test")
OK = b"r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n\0"


class TlsTestCase(RemoteTestCase):
    dns_records = ["--address=/mx.test/127.0.0.2", "--address=/mx465.test/127.0.46.5"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.certs
        cls.good = c.leaf("mx", dns=["mx.test"], ips=["127.0.0.2"])
        cls.wrong = c.leaf("wrong", dns=["other.test"])
        cls.cn_only = c.leaf("cnonly", cn="elsewhere.test", dns=[], ips=[])
        cls.expired = c.leaf("expired", dns=["mx.test"], expired=True)
        cls.other_ca = certs.CertFactory(os.path.join(cls.root), ca_name="other test CA")
        cls.untrusted = cls.other_ca.leaf("untrusted", dns=["mx.test"])
        cls.client = c.leaf("client", cn="qtls.test", email="relay@qtls.test", ips=[])

    def tls_peer(self, identity=None, **kw):
        kw.setdefault("starttls", True)
        return self.peer(server_ctx=server_context(identity or self.good), **kw)

    def trust(self, fqdn="mx.test", ca=None):
        with open((ca or self.certs.ca).cert_path) as f:
            self.home.write("tlshosts/%s.pem" % fqdn, f.read())

    def go(self, peer, relay="mx.test", message=b"Subject: t\n\nhello\n"):
        self.route("example.test", peer, relay)
        self.start_daemon()
        return self.deliver(ARGV, message)

    def log_line(self, n=None):
        """The last delivery line, or the n-th once there are n: the daemon logs a delivery
        after it answers the shim, so a test of the n-th delivery waits for its line."""
        def lines():
            return [l for l in self.daemon.read_log().splitlines() if "delivery id=" in l]
        wait_for(lambda: len(lines()) >= (n or 1), what="delivery log line %s" % (n or 1))
        return lines()[n - 1] if n else lines()[-1]


class PostfixTest(TlsTestCase):
    """A real MTA on the other end."""

    def setUp(self):
        super().setUp()
        self.pf = PostfixSink(self.dir, self.good)
        self.home.write("smtproutes", "example.test:mx.test:%d\n" % self.pf.port)

    def tearDown(self):
        self.pf.stop()
        super().tearDown()

    def postfix_accepted(self, out):
        self.assertRegex(out.decode(), r"^r\0K127\.0\.0\.2 accepted message\.\nRemote host said: "
                                       r"250 2\.0\.0 Ok: queued as \w+\n\0$")

    def test_opportunistic_starttls(self):
        self.start_daemon()
        self.postfix_accepted(self.deliver(ARGV))
        line = self.log_line()
        self.assertIn("level=may/encrypt tls=TLSv1.3/", line)
        wait_for(lambda: "TLS connection established from" in self.pf.log(), what="postfix TLS")

    def test_tlshosts_verified(self):
        self.trust()
        self.start_daemon()
        self.postfix_accepted(self.deliver(ARGV))
        self.assertIn("policy=tlshosts level=verify/verify", self.log_line())
        self.assertIn("verify=ok", self.log_line())

    def test_tlspolicy_fingerprint(self):
        self.home.write("tlspolicy", "example.test fingerprint fingerprint=%s\n"
                        % self.good.sha256_hex())
        self.start_daemon()
        self.postfix_accepted(self.deliver(ARGV))
        self.assertIn("level=fingerprint/fingerprint", self.log_line())

    def test_tlshosts_untrusted_postfix_is_deferred(self):
        self.trust(ca=self.other_ca.ca)
        self.start_daemon()
        self.assertEqual(self.deliver(ARGV),
                         b"ZTLS unable to verify server with control/tlshosts/mx.test.pem: unable "
                         b"to verify the first certificate; connected to 127.0.0.2.\n\0")


class PolicyFilesTest(TlsTestCase):
    def test_required_but_starttls_not_offered(self):
        self.trust()
        p = self.peer(starttls=False)
        self.assertEqual(self.go(p), b"ZNo TLS achieved while control/tlshosts/mx.test.pem exists; "
                                     b"connecting to 127.0.0.2.\n\0")
        self.assertNotIn("MAIL FROM:<a@sender.test>", p.transcript)

    def test_required_but_starttls_refused(self):
        self.trust()
        p = self.tls_peer(replies={"starttls": "454 TLS not available"})
        self.assertEqual(self.go(p), b"ZSTARTTLS rejected while control/tlshosts/mx.test.pem exists; "
                                     b"connecting to 127.0.0.2.\nRemote host said: 454 TLS not "
                                     b"available\n\0")

    def test_opportunistic_starttls_refused_continues_plain(self):
        p = self.tls_peer(replies={"starttls": "454 TLS not available"})
        self.assertEqual(self.go(p), OK)
        self.assertEqual(p.tls_info, [])

    def test_handshake_failure_is_deferred_even_when_opportunistic(self):
        p = self.tls_peer(tls_garbage=b"this is not TLS\r\n")
        self.assertEqual(self.go(p), b"ZTLS connect failed: error:0A00010B:SSL routines::wrong "
                                     b"version number; connected to 127.0.0.2.\n\0")

    def test_unusable_ca_file(self):
        self.home.write("tlshosts/mx.test.pem", "not a certificate\n")
        p = self.tls_peer()
        self.assertEqual(self.go(p), b"ZTLS unable to load control/tlshosts/mx.test.pem: error:05800088:"
                                     b"x509 certificate routines::no certificate or crl found; "
                                     b"connecting to 127.0.0.2.\n\0")
        self.assertNotIn("STARTTLS", p.transcript)

    def test_untrusted_ca(self):
        self.trust()
        p = self.tls_peer(self.untrusted)
        self.assertEqual(self.go(p), b"ZTLS unable to verify server with control/tlshosts/mx.test.pem:"
                                     b" unable to verify the first certificate; connected to "
                                     b"127.0.0.2.\n\0")
        self.assertNotIn("MAIL FROM:<a@sender.test>", p.transcript)
        # The log says what the session had: encrypted, not verified.
        line = self.log_line()
        self.assertIn(" level=verify/encrypt tls=TLSv1.3/", line)
        self.assertIn(" verify=fail reused=no resumed=no status=Z ", line)
        # For alerting, a handshake whose certificate check failed is a failed handshake.
        import urllib.request
        with urllib.request.urlopen("http://%s/metrics" % self.daemon.metrics_address()) as r:
            metrics = r.read().decode()
        self.assertIn('qtls_remote_tls_handshakes_total{level="verify",result="failed",'
                      'version="none"} 1', metrics)
        self.assertNotIn('result="ok"', metrics.split("qtls_remote_tls_handshakes_total{", 1)[1]
                         .split("\n# ", 1)[0])

    def test_wrong_name(self):
        self.trust()
        p = self.tls_peer(self.wrong)
        self.assertEqual(self.go(p), b"ZTLS unable to verify server mx.test: certificate contains no "
                                     b"matching dNSNnames; connected to 127.0.0.2.\n\0")

    def test_cn_only_mismatch(self):
        self.trust()
        p = self.tls_peer(self.cn_only)
        self.assertEqual(self.go(p), b"ZTLS unable to verify server mx.test: received certificate for "
                                     b"elsewhere.test; connected to 127.0.0.2.\n\0")

    def test_expired(self):
        self.trust()
        p = self.tls_peer(self.expired)
        self.assertEqual(self.go(p), b"ZTLS unable to verify server with control/tlshosts/mx.test.pem:"
                                     b" certificate has expired; connected to 127.0.0.2.\n\0")

    def test_verified_delivery_sends_sni_and_quit(self):
        self.trust()
        p = self.tls_peer()
        self.assertEqual(self.go(p), OK)
        self.assertEqual(p.sni, ["mx.test"])
        self.assertEqual(p.transcript[:3], ["EHLO qtls.test", "STARTTLS", "EHLO qtls.test"])
        wait_for(lambda: "QUIT" in p.transcript, what="QUIT over TLS")
        self.assertEqual(p.tls_info[0]["version"], "TLSv1.3")

    def test_reply_injection_before_handshake_is_discarded(self):
        p = self.tls_peer(inject=b"250 injected\r\n")
        self.assertEqual(self.go(p), OK)
        wait_for(lambda: "sent 14 bytes before the TLS handshake; discarded" in self.daemon.read_log(),
                 what="injection warning")

    def test_notlshosts_and_exhaustivelist_mean_plain(self):
        for setup in (lambda: self.home.write("notlshosts/mx.test", ""),
                      lambda: self.home.write("tlshosts/exhaustivelist", "")):
            with self.subTest():
                self.tearDown(); self.setUp()
                setup()
                p = self.tls_peer()
                self.assertEqual(self.go(p), OK)
                self.assertNotIn("STARTTLS", p.transcript)

    def test_ip_literal_target_gets_no_policy(self):
        self.trust("127.0.0.2")  # a file for the IP is never consulted
        p = self.tls_peer(self.untrusted)
        self.assertEqual(self.go(p, relay="127.0.0.2"), OK)
        self.assertIn("policy=ip-literal level=may/encrypt", self.log_line())

    def test_path_tricks_in_names_are_not_followed(self):
        self.trust("mx.test")
        p = self.tls_peer(self.untrusted)
        # A relay name that would walk out of notlshosts/ is never pasted into a path.
        out = self.go(p, relay="mx.test")
        self.assertTrue(out.startswith(b"ZTLS unable to verify server with"))

    def test_tls12_minimum(self):
        ctx = server_context(self.good)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        p = self.peer(server_ctx=ctx, starttls=True)
        out = self.go(p)
        self.assertTrue(out.startswith(b"ZTLS connect failed: error:"), out)
        self.assertTrue(out.endswith(b"; connected to 127.0.0.2.\n\0"), out)

    def test_client_certificate_presented_when_asked(self):
        self.home.write("clientcert.pem", open(self.client.pem_path).read(), 0o600)
        p = self.peer(server_ctx=server_context(self.good, client_ca=self.certs.ca.cert_path),
                      starttls=True)
        self.assertEqual(self.go(p), OK)
        peer = p.tls_info[0]["peer"]
        self.assertIn(((("emailAddress", "relay@qtls.test"),)), peer["subject"])

    def test_invalid_client_certificate_refuses_to_start(self):
        self.home.write("clientcert.pem", "not a pem\n")
        with self.assertRaises(AssertionError) as e:
            self.start_daemon()
        self.assertIn("loading client certificate", str(e.exception))

    def test_tlsclientciphers(self):
        self.home.write("tlsclientciphers", "TLS_AES_128_GCM_SHA256\n")
        p = self.tls_peer()
        self.assertEqual(self.go(p), OK)
        self.assertEqual(p.tls_info[0]["cipher"], "TLS_AES_128_GCM_SHA256")


class TlsPolicyTableTest(TlsTestCase):
    def test_encrypt_requires_starttls(self):
        self.home.write("tlspolicy", "example.test encrypt\n")
        p = self.peer(starttls=False)
        self.assertEqual(self.go(p), b"ZNo TLS achieved while control/tlspolicy line 1 requires "
                                     b"encrypt; connecting to 127.0.0.2.\n\0")

    def test_encrypt_does_not_verify(self):
        self.home.write("tlspolicy", "example.test encrypt\n")
        p = self.tls_peer(self.untrusted)
        self.assertEqual(self.go(p), OK)
        self.assertIn("level=encrypt/encrypt", self.log_line())

    def test_encrypt_overrides_notlshosts(self):
        self.home.write("tlspolicy", "example.test encrypt\n")
        self.home.write("notlshosts/mx.test", "")
        p = self.tls_peer()
        self.assertEqual(self.go(p), OK)
        self.assertIn("STARTTLS", p.transcript)

    def test_encrypt_even_for_ip_targets(self):
        # The table is keyed by the recipient domain, so an MX or route given as an IP cannot
        # downgrade it.
        self.home.write("tlspolicy", "example.test encrypt\n")
        p = self.peer(starttls=False)
        self.assertEqual(self.go(p, relay="127.0.0.2"),
                         b"ZNo TLS achieved while control/tlspolicy line 1 requires encrypt; "
                         b"connecting to 127.0.0.2.\n\0")

    def test_fingerprint_mismatch(self):
        self.home.write("tlspolicy", "example.test fingerprint spki=%s\n" % ("0" * 64))
        p = self.tls_peer()
        self.assertEqual(self.go(p), b"ZTLS unable to verify server mx.test: certificate matches no "
                                     b"fingerprint of control/tlspolicy line 1; connected to "
                                     b"127.0.0.2.\n\0")

    def test_fingerprint_spki_match(self):
        self.home.write("tlspolicy", "example.test fingerprint spki=%s\n" % self.good.spki_sha256_hex())
        p = self.tls_peer()
        self.assertEqual(self.go(p), OK)

    def test_verify_with_ca_and_match(self):
        self.home.write("tlspolicy", "example.test verify ca=%s match=other.test\n"
                        % self.certs.ca.cert_path)
        p = self.tls_peer(self.wrong)  # certificate for other.test
        self.assertEqual(self.go(p), OK)
        self.assertIn("verify=ok", self.log_line())

    def test_verify_match_wildcard(self):
        self.home.write("tlspolicy", "example.test verify ca=%s match=*.test\n"
                        % self.certs.ca.cert_path)
        p = self.tls_peer(self.good)  # certificate for mx.test
        self.assertEqual(self.go(p), OK)

    def test_verify_match_failure(self):
        self.home.write("tlspolicy", "example.test verify ca=%s match=third.test\n"
                        % self.certs.ca.cert_path)
        p = self.tls_peer(self.good)
        self.assertEqual(self.go(p), b"ZTLS unable to verify server third.test: certificate contains "
                                     b"no matching dNSNnames; connected to 127.0.0.2.\n\0")

    def test_missing_or_unusable_ca_file_is_refused_with_its_line(self):
        # A ca= file is part of the policy: checked when the policy is compiled, not at the
        # first delivery that needs it.
        bad = self.home.write("not-a-ca.pem", "no certificate here\n")
        for ca, why in (("/nonexistent/ca.pem", "no such file"),
                        (bad, "error:05800088:x509 certificate routines::no certificate or crl "
                              "found")):
            with self.subTest(ca=ca):
                self.tearDown(); self.setUp()
                self.home.write("not-a-ca.pem", "no certificate here\n")
                self.home.write("tlspolicy", "other.test may\nexample.test verify ca=%s\n" % ca)
                with self.assertRaises(AssertionError) as e:
                    self.start_daemon()
                self.assertIn("control/tlspolicy line 2: ca=%s: %s" % (ca, why), str(e.exception))

    def test_ca_dropped_into_tlshosts_applies_by_itself(self):
        # qmail-tls habits: a CA dropped into tlshosts/ applies to the next delivery, with no
        # signal (the daemon watches control/; --watch-control, default 500 ms of quiet).
        p = self.tls_peer()
        self.route("example.test", p, "mx.test")
        self.start_daemon(args=["--watch-control", "200"])
        self.assertEqual(self.deliver(ARGV), OK)
        self.assertIn("policy=default level=may/", self.log_line())
        self.trust()
        wait_for(lambda: "reload: control files loaded, generation 2 (inotify)"
                 in self.daemon.read_log(), what="the reload after the hand edit")
        self.assertEqual(self.deliver(ARGV), OK)
        line = self.log_line(2)
        self.assertIn(" gen=2 ", line)
        self.assertIn("policy=tlshosts level=verify/verify", line)
        self.assertIn(" verify=ok ", line)

    def test_half_written_file_is_refused_then_applied_when_complete(self):
        p = self.tls_peer()
        self.route("example.test", p, "mx.test")
        self.start_daemon(args=["--watch-control", "200"])
        path = os.path.join(self.home.control, "tlspolicy")
        with open(path, "w") as f:
            f.write("example.test veri")  # an editor's write caught half way
            f.flush()
            wait_for(lambda: re.search(r"reload: keeping generation 1 \(inotify\): .*tlspolicy "
                                       r"line 1", self.daemon.read_log()),
                     what="the half-written file refused")
            self.assertEqual(self.deliver(ARGV), OK)  # the old snapshot serves on
            self.assertIn(" gen=1 ", self.log_line())
            f.write("fy\n")
        wait_for(lambda: "reload: control files loaded, generation 2 (inotify)"
                 in self.daemon.read_log(), what="the completed file applied")
        self.assertTrue(self.deliver(ARGV).startswith(b"ZTLS"))  # verify without a usable CA

    def test_hand_made_tlshosts_file_takes_effect_at_sighup(self):
        # With the watch off (--watch-control 0, the harness's default) the snapshot holds
        # the tlshosts/ names: a file made by hand changes nothing until the daemon reloads
        # (SIGHUP or the admin API), and then applies to every delivery at once.
        p = self.tls_peer(self.untrusted)
        self.assertEqual(self.go(p), OK)
        self.trust()
        self.assertEqual(self.deliver(ARGV), OK)
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: control files loaded, generation 2" in self.daemon.read_log(),
                 what="reload")
        self.assertTrue(self.deliver(ARGV).startswith(b"ZTLS unable to verify server with "
                                                      b"control/tlshosts/mx.test.pem"))


class ImplicitTlsTest(TlsTestCase):
    def implicit_peer(self, **kw):
        return self.peer(host="127.0.46.5", port=465, server_ctx=server_context(self.good),
                         implicit=True, **kw)

    def test_port_465_is_implicit_tls(self):
        p = self.implicit_peer()
        self.route("example.test", p, "mx465.test")
        self.start_daemon()
        self.assertEqual(self.deliver(ARGV),
                         b"r\0K127.0.46.5 accepted message.\nRemote host said: 250 ok queued\n\0")
        self.assertEqual(p.transcript[0], "EHLO qtls.test")
        self.assertEqual(p.sni, ["mx465.test"])

    def test_port_465_greeting_failure(self):
        p = self.implicit_peer(replies={"greeting": "554 not now"})
        self.route("example.test", p, "mx465.test")
        self.start_daemon()
        self.assertEqual(self.deliver(ARGV), b"ZTLS Connected to 127.0.46.5 but greeting failed.\n"
                                             b"Remote host said: 554 not now\n\0")

    def test_port_465_with_notlshosts_still_uses_tls(self):
        self.home.write("notlshosts/mx465.test", "")
        p = self.implicit_peer()
        self.route("example.test", p, "mx465.test")
        self.start_daemon()
        self.assertTrue(self.deliver(ARGV).startswith(b"r\0K127.0.46.5"))


if __name__ == "__main__":
    unittest.main()
