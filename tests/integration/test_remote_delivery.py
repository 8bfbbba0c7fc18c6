"""Outbound delivery without TLS: every step's failure report, byte for byte, against
scripted servers on loopback; DNS (MX, A fallback, failures, loop protection, IPv6) against a
real dnsmasq."""
import os
import signal
import unittest

from harness import RemoteTestCase, rspawn

IP = "127.0.0.2"


class DialogueTest(RemoteTestCase):
    def setUp(self):
        super().setUp()

    def run_case(self, peer_kw, argv=("example.test", "a@sender.test", "u@example.test"),
                 message=b"Subject: t\n\nhello\n"):
        p = self.peer(**peer_kw)
        self.route("example.test", p)
        self.start_daemon()
        return p, self.deliver(argv, message)

    def test_accepted(self):
        p, out = self.run_case({})
        self.assertEqual(out, b"r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n\0")
        self.assertEqual(rspawn(out, 0),
                         b"K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n")
        self.assertEqual(p.transcript[:4], ["EHLO qtls.test", "MAIL FROM:<a@sender.test>",
                                            "RCPT TO:<u@example.test>", "DATA"])

    def test_quit_is_sent_after_the_report(self):
        p, out = self.run_case({})
        self.assertTrue(out.startswith(b"r\0K"))
        from harness import wait_for
        wait_for(lambda: "QUIT" in p.transcript, what="QUIT")

    def test_body_is_dot_stuffed_and_crlf(self):
        p, out = self.run_case({}, message=b"Subject: s\n\n.start\nmid.dle\n..two\n\xe9\n")
        self.assertTrue(out.startswith(b"r\0K"))
        self.assertEqual(p.messages[0], b"Subject: s\r\n\r\n..start\r\nmid.dle\r\n...two\r\n\xe9\r\n")

    def test_cr_is_sent_unchanged(self):
        p, out = self.run_case({}, message=b"Subject: s\r\n\r\nx\n")
        self.assertTrue(out.startswith(b"r\0K"))
        self.assertEqual(p.messages[0], b"Subject: s\r\r\n\r\r\nx\r\n")

    def test_partial_final_line(self):
        p, out = self.run_case({}, message=b"Subject: s\n\nno newline")
        self.assertEqual(out, b"r\0DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n\0")
        self.assertEqual(rspawn(out, 0), b"DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n")

    def test_greeting_4xx_and_5xx(self):
        for code, text in (("421", "421 busy"), ("554", "554 go away")):
            with self.subTest(code=code):
                self.tearDown(); self.setUp()
                p, out = self.run_case({"replies": {"greeting": text}})
                self.assertEqual(out, ("ZConnected to 127.0.0.2 but greeting failed.\n"
                                       "Remote host said: %s\n\0" % text).encode())

    def test_ehlo_refused_falls_back_to_helo(self):
        p, out = self.run_case({"replies": {"ehlo": "500 what"}})
        self.assertTrue(out.startswith(b"r\0K"), out)
        self.assertEqual(p.transcript[:2], ["EHLO qtls.test", "HELO qtls.test"])

    def test_helo_refused(self):
        for helo in ("550 no", "451 later"):
            with self.subTest(helo=helo):
                self.tearDown(); self.setUp()
                p, out = self.run_case({"replies": {"ehlo": "502 no", "helo": helo}})
                self.assertEqual(out, ("ZConnected to 127.0.0.2 but my name was rejected.\n"
                                       "Remote host said: %s\n\0" % helo).encode())

    def test_mail_refused(self):
        for kind, text in (("D", "553 sender no"), ("Z", "451 sender later")):
            with self.subTest(text=text):
                self.tearDown(); self.setUp()
                p, out = self.run_case({"replies": {"mail": text}})
                self.assertEqual(out, ("%sConnected to 127.0.0.2 but sender was rejected.\n"
                                       "Remote host said: %s\n\0" % (kind, text)).encode())

    def test_rcpt_refused(self):
        p, out = self.run_case({"replies": {"rcpt": "550 5.1.1 no such user"}})
        self.assertEqual(out, b"h127.0.0.2 does not like recipient.\nRemote host said: 550 5.1.1 "
                              b"no such user\n\0DGiving up on 127.0.0.2.\n\0")
        self.assertEqual(rspawn(out, 0), b"D127.0.0.2 does not like recipient.\nRemote host said: "
                                         b"550 5.1.1 no such user\nGiving up on 127.0.0.2.\n")
        self.tearDown(); self.setUp()
        p, out = self.run_case({"replies": {"rcpt": "450 mailbox busy"}})
        self.assertEqual(out, b"s127.0.0.2 does not like recipient.\nRemote host said: 450 mailbox "
                              b"busy\n\0DGiving up on 127.0.0.2.\n\0")
        self.assertEqual(rspawn(out, 0), b"Z127.0.0.2 does not like recipient.\nRemote host said: "
                                         b"450 mailbox busy\nGiving up on 127.0.0.2.\n")

    def test_data_refused(self):
        for kind, text in (("D", "554 no data"), ("Z", "451 data later")):
            with self.subTest(text=text):
                self.tearDown(); self.setUp()
                p, out = self.run_case({"replies": {"data": text}})
                self.assertEqual(out, ("r\0%s127.0.0.2 failed on DATA command.\n"
                                       "Remote host said: %s\n\0" % (kind, text)).encode())
                self.assertEqual(rspawn(out, 0), ("%s127.0.0.2 failed on DATA command.\n"
                                                  "Remote host said: %s\n" % (kind, text)).encode())

    def test_after_dot_refused(self):
        for kind, text in (("D", "554 5.7.1 spam"), ("Z", "452 full")):
            with self.subTest(text=text):
                self.tearDown(); self.setUp()
                p, out = self.run_case({"replies": {"dot": text}})
                self.assertEqual(out, ("r\0%s127.0.0.2 failed after I sent the message.\n"
                                       "Remote host said: %s\n\0" % (kind, text)).encode())

    def test_only_2xx_after_the_dot_is_success(self):
        # qmail-remote took any code below 400; a 1xx or 3xx is not an acceptance.
        for text in ("354 send more", "199 thinking"):
            with self.subTest(text=text):
                self.tearDown(); self.setUp()
                p, out = self.run_case({"replies": {"dot": text}})
                self.assertEqual(out, ("r\0Z127.0.0.2 failed after I sent the message.\n"
                                       "Remote host said: %s\n\0" % text).encode())

    def test_extra_reply_is_a_protocol_error(self):
        # An extra 250 sent with the RCPT reply would otherwise answer DATA, and the real 354
        # would be read as the reply to the final dot.
        p, out = self.run_case({"replies": {"rcpt": "250 ok\r\n250 ok"}, "pipelining": False})
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but the reply was malformed (more than one "
                              b"reply at once). (#4.4.2)\n\0")
        self.assertNotIn("DATA", p.transcript)

    def test_extra_reply_when_pipelining_is_a_protocol_error(self):
        # Pipelined, the extra 250 is taken for DATA's reply: not a 354, so no body is sent.
        p, out = self.run_case({"replies": {"rcpt": "250 ok\r\n250 ok"}})
        self.assertIn(out, (b"r\0ZConnected to 127.0.0.2 but the reply was malformed (DATA answered "
                            b"with 250, not 354). (#4.4.2)\n\0",
                            b"r\0ZConnected to 127.0.0.2 but the reply was malformed (more than "
                            b"one reply at once). (#4.4.2)\n\0"))
        self.assertIn(p.messages, ([], [None]))  # no body: the connection was closed in DATA

    def test_multiline_reply_text(self):
        p, out = self.run_case({"replies": {"dot": "250-first\r\n250 second"}})
        self.assertEqual(out, b"r\0K127.0.0.2 accepted message.\nRemote host said: 250-first\n"
                              b"250 second\n\0")

    def test_connection_dropped_after_dot_is_possible_duplicate(self):
        p, out = self.run_case({"drop_after_dot": True})
        self.assertEqual(out, b"r\0ZConnected to 127.0.0.2 but connection died. Possible duplicate! "
                              b"(#4.4.2)\n\0")

    def test_non_numeric_reply_is_a_protocol_error(self):
        p, out = self.run_case({"replies": {"mail": "OK fine"}})
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but the reply was malformed (malformed reply "
                              b"line \"OK fine\"). (#4.4.2)\n\0")

    def test_two_recipients_mixed(self):
        p = self.peer(replies={})
        self.route("example.test", p)
        self.start_daemon()
        out = self.deliver(("example.test", "", "good@example.test", "bad@example.test"))
        self.assertEqual(out, b"r\0r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n\0")
        self.assertIn("MAIL FROM:<>", p.transcript)

    def test_smtproutes_with_auth_credentials_is_refused_at_load(self):
        self.home.write("smtproutes", "example.test:smtp.isp.test:587|alice|s3cret\n")
        with self.assertRaises(AssertionError) as e:
            self.start_daemon()
        self.assertIn('smtproutes: the route for "example.test" carries SMTP AUTH credentials',
                      str(e.exception))
        self.assertNotIn("s3cret", str(e.exception))

    def test_no_connection(self):
        port = __import__("harness").free_port(IP)
        self.home.write("smtproutes", "example.test:%s:%d\n" % (IP, port))
        self.home.write("timeoutconnect", "2\n")
        self.start_daemon()
        out = self.deliver(("example.test", "a@b", "u@example.test"))
        self.assertEqual(out, b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0")


class TimeoutTest(RemoteTestCase):
    def test_silent_server_hits_timeoutremote(self):
        p = self.peer(stall="mail")
        self.route("example.test", p)
        self.home.write("timeoutremote", "1\n")
        self.start_daemon()
        out = self.deliver(("example.test", "a@b", "u@example.test"))
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but connection died. (#4.4.2)\n\0")

    def test_silent_after_dot_is_possible_duplicate(self):
        p = self.peer(stall="dot")
        self.route("example.test", p)
        self.home.write("timeoutremote", "1\n")
        self.start_daemon()
        out = self.deliver(("example.test", "a@b", "u@example.test"))
        self.assertEqual(out, b"r\0ZConnected to 127.0.0.2 but connection died. Possible duplicate! "
                              b"(#4.4.2)\n\0")


MX_PORT_PEER = {}


class DnsTest(RemoteTestCase):
    dns_records = [
        "--mx-host=example.test,mx1.test,10",
        "--mx-host=example.test,mx2.test,20",
        "--address=/mx1.test/127.0.0.2",
        "--address=/mx2.test/127.0.0.3",
        "--address=/plain.test/127.0.0.4",          # no MX: A fallback
        "--mx-host=loop.test,self.test,10",
        "--address=/self.test/127.0.0.1",           # an address of this host
        "--mx-host=dangling.test,nowhere.test,10",  # MX target without address
        "--mx-host=six.test,mx6.test,10",
        "--address=/mx6.test/::1",
    ]

    def mx_daemon(self, port, extra=()):
        return self.start_daemon(["--mx-port", str(port)] + list(extra))

    def test_mx_lowest_preference_first(self):
        p1 = self.peer(host="127.0.0.2")
        p2 = self.peer(host="127.0.0.3", port=p1.port)
        self.mx_daemon(p1.port)
        out = self.deliver(("example.test", "a@b", "u@example.test"))
        self.assertEqual(out, b"r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n\0")
        self.assertEqual(p2.transcript, [])

    def test_next_mx_when_first_refuses_connections(self):
        p2 = self.peer(host="127.0.0.3")
        self.mx_daemon(p2.port)  # nothing listens on 127.0.0.2 at that port
        out = self.deliver(("example.test", "a@b", "u@example.test"))
        self.assertEqual(out, b"r\0K127.0.0.3 accepted message.\nRemote host said: 250 ok queued\n\0")

    def test_a_fallback_without_mx(self):
        p = self.peer(host="127.0.0.4")
        self.mx_daemon(p.port)
        out = self.deliver(("plain.test", "a@b", "u@plain.test"))
        self.assertEqual(out, b"r\0K127.0.0.4 accepted message.\nRemote host said: 250 ok queued\n\0")

    def test_nxdomain_is_permanent(self):
        self.mx_daemon(2525)
        out = self.deliver(("nx.test", "a@b", "u@nx.test"))
        self.assertEqual(out, b"DSorry, I couldn't find any host named nx.test. (#5.1.2)\n\0")

    def test_mx_without_address_is_permanent(self):
        self.mx_daemon(2525)
        out = self.deliver(("dangling.test", "a@b", "u@dangling.test"))
        self.assertEqual(out, b"DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n\0")

    def test_mx_pointing_at_me_is_a_loop(self):
        self.mx_daemon(2525)
        out = self.deliver(("loop.test", "a@b", "u@loop.test"))
        self.assertEqual(out, b"DSorry. Although I'm listed as a best-preference MX or A for that "
                              b"host,\nit isn't in my control/locals file, so I don't treat it as "
                              b"local. (#5.4.6)\n\0")

    def test_ipv6_target(self):
        p = self.peer(host="::1")
        self.mx_daemon(p.port, ["--ipme-exclude", "::1"])
        out = self.deliver(("six.test", "a@b", "u@six.test"))
        self.assertEqual(out, b"r\0K::1 accepted message.\nRemote host said: 250 ok queued\n\0")

    def test_dns_server_down_is_temporary(self):
        self.daemon = __import__("harness").Remoted(
            self.home, self.dir, __import__("harness").free_port("127.0.0.1"), ["--mx-port", "2525"])
        out = self.deliver(("example.test", "a@b", "u@example.test"))
        self.assertEqual(out, b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n\0")


class ReloadTest(RemoteTestCase):
    def test_sighup_right_after_start_does_not_kill(self):
        p = self.peer()
        self.route("example.test", p)
        d = self.start_daemon()  # returns as soon as the socket exists
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(self.deliver(("example.test", "a@b", "u@example.test")).startswith(b"r\0K"))
        self.assertIsNone(d.proc.poll())

    def test_socket_removed_on_stop(self):
        d = self.start_daemon()
        d.stop()
        self.assertFalse(os.path.exists(d.socket))

    def test_sighup_rereads_and_keeps_last_good_state(self):
        p1 = self.peer(host="127.0.0.2")
        p2 = self.peer(host="127.0.0.3")
        self.route("example.test", p1)
        d = self.start_daemon()
        self.assertTrue(self.deliver(("example.test", "a@b", "u@example.test")).startswith(b"r\0K127.0.0.2"))
        self.route("example.test", p2)
        d.proc.send_signal(signal.SIGHUP)
        # smtproutes is not TLS policy: it is reread, and the policy generation stays 1.
        __import__("harness").wait_for(lambda: "control files loaded, generation 1" in d.read_log(),
                                       what="reload")
        self.assertTrue(self.deliver(("example.test", "a@b", "u@example.test")).startswith(b"r\0K127.0.0.3"))
        # An invalid tlspolicy is refused whole; the old routes and generation stay in force.
        self.home.write("tlspolicy", "example.test verify\nbadline\n")
        self.route("example.test", p1)
        d.proc.send_signal(signal.SIGHUP)
        __import__("harness").wait_for(lambda: "keeping generation 1" in d.read_log(), what="refusal")
        self.assertIn("control/tlspolicy line 2: expected", d.read_log())
        self.assertTrue(self.deliver(("example.test", "a@b", "u@example.test")).startswith(b"r\0K127.0.0.3"))


if __name__ == "__main__":
    unittest.main()
