"""Outbound faults that could lose or double mail: a server out of step, a shim that goes away,
a delivery that never ends, a daemon stopped mid-delivery, and what the log line says about
each. Real daemon and shim, scripted servers on loopback."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import SHIM, RemoteTestCase, run_shim, wait_for

ARGV = ("example.test", "a@sender.test", "u@example.test")


class RemoteFaultTest(RemoteTestCase):
    def setup_peer(self, args=(), **kw):
        p = self.peer(**kw)
        self.route("example.test", p)
        self.start_daemon(args=list(args))
        return p

    def delivery_line(self):
        wait_for(lambda: "delivery id=" in self.daemon.read_log(), what="delivery log line")
        return [l for l in self.daemon.read_log().splitlines() if "delivery id=" in l][-1]

    def shim_in_background(self, env=None):
        f = tempfile.TemporaryFile()
        f.write(b"Subject: t\n\nhello\n")
        f.seek(0)
        e = {"PATH": "/usr/bin:/bin", "QMAILHOME": self.home.path,
             "QTLS_REMOTED_SOCKET": self.daemon.socket}
        e.update(env or {})
        proc = subprocess.Popen([SHIM] + list(ARGV), stdin=f, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=e)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(), f.close()))
        return proc

    # 1. A server out of step must never get the message.

    def test_extra_reply_with_the_greeting(self):
        p = self.setup_peer(replies={"greeting": "220 mx ESMTP\r\n250 x"})
        out = self.deliver(ARGV)
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but the reply was malformed (more than one "
                              b"reply at once). (#4.4.2)\n\0")
        self.assertEqual(p.transcript, [])
        self.assertEqual(p.messages, [])

    def test_extra_reply_with_the_ehlo_reply(self):
        p = self.setup_peer(replies={"ehlo": "250 peer.test\r\n250 x"})
        out = self.deliver(ARGV)
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but the reply was malformed (more than one "
                              b"reply at once). (#4.4.2)\n\0")
        self.assertNotIn("MAIL FROM:<a@sender.test>", p.transcript)

    def test_late_extra_reply_never_lets_the_body_go(self):
        # The extra reply comes 0.2 s after the greeting, on its own: whichever check sees the
        # dialogue out of step first, no message may reach the server.
        p = self.setup_peer(late_extra=(0.2, b"250 x\r\n"))
        out = self.deliver(ARGV)
        self.assertRegex(out, rb"^(r\0)?ZConnected to 127\.0\.0\.2 but the reply was malformed "
                              rb"\((a reply before the command was sent|more than one reply at once|"
                              rb"DATA answered with 250, not 354)\)\. \(#4\.4\.2\)\n\0$")
        # None: the server said 354 and the connection closed with no body and no dot.
        self.assertIn(p.messages, ([], [None]))

    def test_data_answered_2xx_is_out_of_step(self):
        p = self.setup_peer(replies={"data": "250 ok"})
        out = self.deliver(ARGV)
        self.assertEqual(out, b"r\0ZConnected to 127.0.0.2 but the reply was malformed (DATA "
                              b"answered with 250, not 354). (#4.4.2)\n\0")
        self.assertIn(p.messages, ([], [None]))

    # 2. The shim goes away: the daemon must not deliver behind its back.

    def test_shim_killed_before_data_abandons_the_delivery(self):
        for pipelining in (False, True):
            with self.subTest(pipelining=pipelining):
                self.shim_killed_before_data(pipelining)

    def shim_killed_before_data(self, pipelining):
        p = self.setup_peer(delay={"rcpt": 4}, pipelining=pipelining)
        proc = self.shim_in_background()
        wait_for(lambda: any(c.startswith("RCPT") for c in p.transcript), what="RCPT at the peer")
        time.sleep(1)
        proc.kill()
        proc.wait()
        line = self.delivery_line()
        time.sleep(4)  # the RCPT reply has come and gone
        if pipelining:
            # DATA left with MAIL and RCPT; the body never does.
            self.assertEqual(p.transcript[-1], "DATA")
            self.assertIn(p.messages, ([], [None]))
        else:
            self.assertNotIn("DATA", p.transcript)
            self.assertEqual(p.messages, [])
        log = self.daemon.read_log()
        self.assertIn("went away during the delivery; abandoned before the final dot, nothing "
                      "was sent", log)
        self.assertIn(" stopped=shim_gone ", line)
        self.assertNotIn("possible_duplicate", line)
        self.daemon.stop()
        self.daemon = None

    def test_shim_killed_after_the_dot_is_logged_as_possible_duplicate(self):
        p = self.setup_peer(delay={"dot": 3})
        proc = self.shim_in_background()
        wait_for(lambda: p.dot_seen, what="the final dot at the peer")
        proc.kill()
        proc.wait()
        line = self.delivery_line()
        self.assertIn("the final dot had been sent: possible duplicate", self.daemon.read_log())
        self.assertIn(" stopped=shim_gone possible_duplicate=yes ", line)

    def test_daemon_killed_after_the_dot_says_possible_duplicate(self):
        # The server has the message and its 250 is on the way when the daemon dies: qmail
        # will send it again, and the shim's Z says so in qmail-remote's words.
        p = self.setup_peer(delay={"dot": 3})
        proc = self.shim_in_background()
        wait_for(lambda: p.dot_seen, what="the final dot at the peer")
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        out, err = proc.communicate(timeout=30)
        self.assertEqual(err, b"")
        self.assertEqual(out, ("ZConnected to 127.0.0.2 but connection died. qtls-remote: "
                               "connection closed before an answer from qtls-remoted at %s: "
                               "daemon stopped or crashed, after the final dot. Possible "
                               "duplicate! (#4.4.2)\n\0" % self.daemon.socket).encode())

    def test_shim_timeout_below_the_floor_does_not_give_up_early(self):
        # QTLS_REMOTE_TIMEOUT=5 is raised to 30 s: a 12 s RCPT reply (keepalives every 10 s)
        # is waited for, and the message is delivered once, with K.
        p = self.setup_peer(delay={"rcpt": 12})
        out = self.deliver(ARGV, env={"QTLS_REMOTE_TIMEOUT": "5"})
        self.assertEqual(out, b"r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n\0")
        self.assertEqual(len(p.messages), 1)

    # 3. No delivery lasts forever.

    def test_dribbling_server_hits_the_delivery_deadline(self):
        self.home.write("timeoutremote", "2\n")
        p = self.setup_peer(args=["--delivery-limit", "3"], dribble="greeting")
        t0 = time.time()
        out = self.deliver(ARGV)
        self.assertLess(time.time() - t0, 8)
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but the delivery took longer than 3 seconds."
                              b" (#4.4.2)\n\0")
        self.assertIn(" stopped=deadline ", self.delivery_line())

    # 4. Stopping the daemon while deliveries run.

    def stop_during(self, stage):
        p = self.setup_peer(args=["--drain-seconds", "1"], stall=stage)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            zip(("out", "err", "rc"), run_shim(self.daemon.socket, self.home, ARGV))))
        t.start()
        if stage == "dot":
            wait_for(lambda: p.dot_seen, what="the final dot at the peer")
        else:
            wait_for(lambda: any(c.startswith("RCPT") for c in p.transcript), what="RCPT")
        self.daemon.proc.send_signal(signal.SIGTERM)
        t.join(30)
        self.assertEqual(self.daemon.proc.wait(15), 0)
        log = self.daemon.read_log()
        self.assertIn("drain limit of 1 s reached; cutting off 1 deliveries in flight", log)
        self.assertIn("cut off (shutdown)", log)
        self.assertIn(" stopped=shutdown ", self.delivery_line())
        self.assertIn("qtls-remoted stopped", log)
        return result["out"], p

    def test_stop_cuts_off_a_delivery_before_the_dot(self):
        out, p = self.stop_during("rcpt")
        self.assertEqual(out, b"ZConnected to 127.0.0.2 but qtls-remoted stopped during the "
                              b"delivery. (#4.3.0)\n\0")
        self.assertEqual(p.messages, [])

    def test_stop_after_the_dot_says_possible_duplicate(self):
        out, p = self.stop_during("dot")
        self.assertEqual(out, b"r\0ZConnected to 127.0.0.2 but qtls-remoted stopped during the "
                              b"delivery. Possible duplicate! (#4.3.0)\n\0")

    def silent_dns(self):
        """A DNS server that reads queries and never answers."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return ["--dns-server", "127.0.0.1:%d" % s.getsockname()[1], "--dns-timeout-ms", "9000"]

    def test_stop_while_waiting_for_dns_answers_the_shim(self):
        self.start_daemon(args=self.silent_dns() + ["--drain-seconds", "0"])
        proc = self.shim_in_background()
        time.sleep(0.5)
        self.daemon.proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(out, b"Zqtls-remoted stopped before the delivery was made. (#4.3.0)\n\0")
        self.assertEqual(self.daemon.proc.wait(15), 0)
        self.assertIn(" stopped=shutdown ", self.delivery_line())

    def test_deadline_while_waiting_for_dns(self):
        self.start_daemon(args=self.silent_dns() + ["--delivery-limit", "1"])
        t0 = time.time()
        out = self.deliver(ARGV)
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(out, b"ZSorry, the delivery took longer than 1 seconds. (#4.4.1)\n\0")

    # 5. The log line tells the truth.

    def test_log_line_has_the_queue_id_qmail_verdict_and_each_recipient(self):
        # s, s, D: qmail-rspawn makes that a deferral (Z), whatever the last record says.
        p = self.setup_peer(replies={"rcpt": "450 busy"})
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"Subject: t\n\nhello\n")
            f.flush()
            f.seek(0)
            e = {"PATH": "/usr/bin:/bin", "QMAILHOME": self.home.path,
                 "QTLS_REMOTED_SOCKET": self.daemon.socket}
            out = subprocess.run([SHIM, "example.test", "a@sender.test", "u@example.test",
                                  "v@example.test"], stdin=f, capture_output=True, env=e).stdout
            inode = os.fstat(f.fileno()).st_ino
        self.assertTrue(out.startswith(b"s127.0.0.2 does not like recipient."), out)
        self.assertTrue(out.endswith(b"\0DGiving up on 127.0.0.2.\n\0"), out)
        line = self.delivery_line()
        self.assertRegex(line, r"delivery id=%d gen=1 digest=sha256:[0-9a-f]{64} "
                               r"domain=example\.test " % inode)
        self.assertIn(" rcpts=u@example.test:450,v@example.test:450 ", line)
        self.assertIn(" status=Z ", line)


if __name__ == "__main__":
    unittest.main()
