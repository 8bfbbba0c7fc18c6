"""Connection reuse and TLS resumption against a real Postfix STARTTLS sink with verified TLS
(tlshosts/): one connection serves many deliveries; a policy change, the idle limit and
shutdown each end it with QUIT; a new connection resumes the TLS session of an earlier one and
keeps its verification. The sink's own log counts connections and commands."""
import re
import signal
import time
import unittest
import urllib.request

from harness import wait_for
from postfix_sink import PostfixSink
from test_admin import unix_api
from test_remote_tls import ARGV, TlsTestCase


class ReuseTest(TlsTestCase):
    def setUp(self):
        super().setUp()
        self.pf = PostfixSink(self.dir, self.good)
        self.home.write("smtproutes", "example.test:mx.test:%d\n" % self.pf.port)
        self.trust()

    def tearDown(self):
        self.pf.stop()
        super().tearDown()

    def lines(self):
        return [l for l in self.daemon.read_log().splitlines() if "delivery id=" in l]

    def connects(self):
        """SMTP sessions, not counting the sink's start-up probe (which says nothing)."""
        probes = len(re.findall(r"disconnect from \S+ commands=0/0", self.pf.log()))
        return len(re.findall(r"\bconnect from ", self.pf.log())) - probes

    def disconnects(self):
        return [d for d in re.findall(r"disconnect from \S+ (.*)", self.pf.log())
                if d != "commands=0/0"]

    def send(self, n):
        for _ in range(n):
            out = self.deliver(ARGV)
            self.assertRegex(out.decode(), r"^r\0K127\.0\.0\.2 accepted message\.\nRemote host "
                                           r"said: 250 2\.0\.0 Ok: queued as \w+\n\0$")

    def metric(self, name, labels):
        with urllib.request.urlopen("http://%s/metrics" % self.daemon.metrics_address()) as r:
            text = r.read().decode()
        m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
        return float(m.group(1)) if m else None

    def test_one_connection_for_many_deliveries_until_the_policy_changes(self):
        self.start_daemon(args=["--connection-idle", "30"])
        self.send(10)
        wait_for(lambda: len(self.lines()) == 10, what="10 delivery lines")
        lines = self.lines()
        self.assertIn(" reused=no ", lines[0])
        for l in lines[1:]:
            self.assertIn(" reused=yes ", l)
            self.assertIn("policy=tlshosts level=verify/verify", l)
            self.assertIn(" verify=ok ", l)
        self.assertEqual(self.connects(), 1)
        self.assertEqual(self.metric("qtls_remote_connection_cache_total", 'result="hit"'), 9)
        # A policy change retires the idle connection: QUIT, seen by Postfix.
        api = unix_api(self.daemon.admin_socket)
        api.put(api.get().generation, {"tlspolicy": "elsewhere.test encrypt\n"})
        wait_for(lambda: self.disconnects(), what="postfix disconnect")
        self.assertRegex(self.disconnects()[0], r"\bmail=10 rcpt=10 data=10 quit=1\b")
        self.assertEqual(
            self.metric("qtls_remote_connection_cache_evictions_total", 'reason="policy"'), 1)
        self.send(1)
        self.assertEqual(self.connects(), 2)
        self.assertIn(" reused=no ", self.lines()[-1])

    def test_a_reload_that_changes_nothing_keeps_the_connection(self):
        self.start_daemon(args=["--connection-idle", "30"])
        self.send(1)
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: control files loaded, generation 1 (SIGHUP)"
                 in self.daemon.read_log(), what="reload")
        self.send(1)
        wait_for(lambda: len(self.lines()) == 2, what="2 delivery lines")
        self.assertIn(" reused=yes ", self.lines()[1])
        self.assertEqual(self.connects(), 1)

    def test_idle_limit_quits_and_a_new_connection_resumes_tls(self):
        self.start_daemon(args=["--connection-idle", "1"])
        self.send(1)
        wait_for(lambda: self.disconnects(), timeout=10, what="QUIT after the idle second")
        self.assertRegex(self.disconnects()[0], r"\bquit=1\b")
        self.send(1)
        self.assertEqual(self.connects(), 2)
        last = self.lines()[-1]
        # Resumed with the session ticket of the first connection; still verified.
        self.assertIn(" reused=no resumed=yes ", last)
        self.assertIn("level=verify/verify", last)
        self.assertIn(" verify=ok ", last)
        self.assertEqual(self.metric("qtls_remote_tls_resumptions_total", 'result="resumed"'), 1)

    def test_without_reuse_every_delivery_connects_and_resumes(self):
        self.start_daemon(args=["--connection-idle", "0"])
        self.send(4)
        wait_for(lambda: len(self.disconnects()) == 4, what="four sessions")
        self.assertEqual(self.connects(), 4)
        resumed = [" resumed=yes " in l for l in self.lines()]
        # Each ticket is used once. Observed with Debian's Postfix 3.7: a full handshake
        # brings a ticket, a resumed one brings none (no ticket was even offered for the third
        # connection: full=2, refused=0), so new connections alternate, full then resumed.
        self.assertEqual(resumed, [False, True, False, True])
        self.assertEqual(self.metric("qtls_remote_tls_resumptions_total", 'result="resumed"'), 2)
        self.assertEqual(self.metric("qtls_remote_tls_resumptions_total", 'result="refused"'), 0)
        for d in self.disconnects():
            self.assertRegex(d, r"\bquit=1\b")

    def test_shutdown_quits_idle_connections(self):
        self.start_daemon(args=["--connection-idle", "60"])
        self.send(2)
        self.assertEqual(self.disconnects(), [])
        self.daemon.stop()
        self.daemon = None
        wait_for(lambda: self.disconnects(), what="QUIT at shutdown")
        self.assertRegex(self.disconnects()[0], r"\bmail=2 rcpt=2 data=2 quit=1\b")


if __name__ == "__main__":
    unittest.main()
