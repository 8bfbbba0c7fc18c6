"""qtls-smtpd under load, abuse and shutdown: long lines, big messages, garbage, clients that
stop, dribble or hold connections, connection limits and eviction, the file-descriptor limit,
stopping with clients connected, and what qmail-queue's environment says about the client."""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import SANITIZED, wait_for
from smtpd_harness import FAKEQ, SMTPD, Client, SmtpdTestCase, client_context


class SlowClientTest(SmtpdTestCase):
    """A client sending a byte at a time cannot hold a session: each command line and each DATA
    stretch has a deadline of its own, besides timeoutsmtpd per read."""

    def dribble(self, c, data, pause=0.3, until=10):
        t0 = time.time()
        c.sock.settimeout(0.05)
        for b in data:
            c.send(bytes([b]))
            try:
                got = c.sock.recv(4096)
                if got:
                    c.buf += got
                    break
            except socket.timeout:
                pass
            time.sleep(pause)
            if time.time() - t0 > until:
                break
        c.sock.settimeout(10)
        return time.time() - t0

    def test_command_line_has_a_deadline(self):
        self.start(["--command-timeout", "2"])
        c = self.connect()
        c.reply()
        took = self.dribble(c, b"NOOP" + b" x" * 100 + b"\r\n")
        self.assertEqual(c.reply(), "451 timeout (#4.4.2)")
        self.assertLess(took, 5)
        wait_for(lambda: "end=timeout" in self.agent.read_log(), what="timeout log")

    def test_data_has_a_minimum_rate(self):
        self.start(["--data-grace", "1", "--data-min-rate", "1000"])
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        self.assertEqual(c.cmd("DATA"), "354 go ahead")
        took = self.dribble(c, b"Subject: slow\r\n\r\n" + b"x" * 100)
        self.assertEqual(c.reply(), "451 timeout (#4.4.2)")
        self.assertLess(took, 5)
        wait_for(lambda: "end=timeout-in-data" in self.agent.read_log(), what="timeout log")
        self.assertEqual(self.records(), [])

    def test_idle_time_between_commands_is_timeoutsmtpd(self):
        # The command deadline counts from a line's first byte: a client that waits, then sends
        # whole commands, is not cut off by it.
        self.start(["--command-timeout", "1"])
        c = self.connect()
        c.reply()
        time.sleep(1.5)
        self.assertEqual(c.cmd("NOOP"), "250 ok")


    def test_client_that_never_reads_is_cut_at_the_command_timeout(self):
        # It pipelines and never reads: the replies' write times out once (--command-timeout),
        # and no 451 is then queued behind them for a second wait (it was cut at twice that).
        timeout = 4
        self.start(["--command-timeout", str(timeout), "--max-junk-commands", "100000000"])
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(6 * timeout)
        s.connect(("127.0.0.1", self.agent.port))
        self.addCleanup(s.close)
        start = time.monotonic()
        with self.assertRaises((ConnectionResetError, BrokenPipeError)):
            while True:  # blocks once the agent stops reading; the reset ends it
                s.sendall(b"HELP\r\n" * 10000)
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, timeout * 0.9)
        self.assertLess(elapsed, timeout * 1.6)
        wait_for(lambda: "end=timeout" in self.agent.read_log(), what="session log")


class ConnectionLimitTest(SmtpdTestCase):
    def test_reserved_slots_go_to_new_clients(self):
        # 10 slots, 10% reserved: 127.0.0.1 gets 9; the 10th goes to a client holding none.
        self.start(["--max-connections", "10", "--max-per-client", "100"])
        held = [self.connect() for _ in range(9)]
        for c in held:
            self.assertTrue(c.reply().startswith("220 "))
        tenth = self.connect()
        self.assertEqual(tenth.reply(), "421 too many connections from your address, try again "
                                        "later (#4.3.2)")
        other = Client(self.agent.port, source="127.0.0.2")
        self.clients.append(other)
        r = other.reply()
        self.assertTrue(r.startswith("220 "), r)

    def test_reserve_holds_at_a_full_table(self):
        # A client holding connections may not take the reserved slot, nor evict to get in.
        self.start(["--max-connections", "3", "--reserve-percent", "34", "--evict-idle", "0"])
        mine = [self.connect(), self.connect()]
        for c in mine:
            c.reply()
        self.assertEqual(self.connect().reply(), "421 too many connections from your address, "
                                                 "try again later (#4.3.2)")
        other = Client(self.agent.port, source="127.0.0.2")
        self.clients.append(other)
        self.assertTrue(other.reply().startswith("220 "))
        time.sleep(0.2)
        self.assertEqual(self.connect().reply(), "421 too many connections, try again later "
                                                 "(#4.3.2)")
        self.assertEqual(other.cmd("NOOP"), "250 ok")  # not evicted

    def test_a_client_dribbling_a_line_is_evictable(self):
        self.start(["--max-connections", "1", "--reserve-percent", "0", "--evict-idle", "1"])
        slow = self.connect()
        slow.reply()
        slow.send("NOO")  # a line begun, never finished
        time.sleep(1.3)
        new = Client(self.agent.port, source="127.0.0.2")
        self.clients.append(new)
        self.assertTrue(new.reply().startswith("220 "))
        self.assertEqual(slow.reply(), "421 mx.agent.test closing an idle connection: too many "
                                       "connections (#4.3.2)")

    def test_full_table_evicts_the_idlest(self):
        self.start(["--max-connections", "3", "--reserve-percent", "0", "--evict-idle", "1"])
        a, b, c = self.connect(), self.connect(), self.connect()
        for x in (a, b, c):
            x.reply()
        time.sleep(0.3)
        for x in (b, c):  # b and c make progress (a transaction begun); a only connected
            self.assertEqual(x.cmd("MAIL FROM:<a@b.test>"), "250 ok")
        time.sleep(1.2)
        d = Client(self.agent.port, source="127.0.0.2")  # a client holding none may evict
        self.clients.append(d)
        self.assertTrue(d.reply().startswith("220 "))
        self.assertEqual(a.reply(), "421 mx.agent.test closing an idle connection: too many "
                                    "connections (#4.3.2)")
        self.assertEqual(b.cmd("NOOP"), "250 ok")
        wait_for(lambda: "end=evicted" in self.agent.read_log(), what="eviction log")

    def newcomer_until_served(self, seconds, meanwhile=lambda: None):
        """A client holding no connection (127.0.2.1) connects again and again until it gets
        its 220, for at most `seconds`: (the client, seconds it took), or (None, None). Every
        refusal must be the full table's 421."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            meanwhile()
            c = Client(self.agent.port, source="127.0.2.1")
            self.clients.append(c)
            r = c.reply()
            if r.startswith("220 "):
                return c, time.monotonic() - start
            self.assertEqual(r, "421 too many connections, try again later (#4.3.2)")
            c.close()
            time.sleep(0.1)
        return None, None

    def in_data(self, subject):
        """A session in the middle of DATA: its header sent, the body to come."""
        c = self.connect()
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>"), "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"), "250 ok")
        self.assertEqual(c.cmd("DATA"), "354 go ahead")
        c.send("Subject: %s\r\n\r\n" % subject)
        return c

    def test_busy_flood_of_noops_is_evicted(self):
        # Issue 18: 1000 connections from 109 addresses each sending NOOP every 5 s held every
        # slot. Scaled down: 30 slots, 30 addresses, a NOOP every 0.3 s from each.
        evict = 2
        self.start(["--max-connections", "30", "--reserve-percent", "10", "--evict-idle",
                    str(evict)])
        stop = threading.Event()
        flood, evicted = [], []

        def noops(c):
            try:
                while not stop.wait(0.3):
                    r = c.cmd("NOOP")
                    if r.startswith("421"):
                        evicted.append(r)
                        return
            except (OSError, EOFError):
                pass

        for i in range(30):
            c = Client(self.agent.port, source="127.0.1.%d" % (i + 1))
            self.clients.append(c)
            self.assertTrue(c.reply().startswith("220 "))
            flood.append(threading.Thread(target=noops, args=(c,), daemon=True))
        full = time.monotonic()
        for t in flood:
            t.start()
        self.addCleanup(stop.set)
        # A newcomer is refused until the flood's sessions are `evict` seconds without
        # progress, then served: NOOPs are not progress.
        new, _ = self.newcomer_until_served(evict + 8)
        self.assertIsNotNone(new, "a new client was never served during the NOOP flood")
        self.assertGreaterEqual(time.monotonic() - full, evict - 0.2)
        self.assertEqual(new.cmd("MAIL FROM:<a@b.test>"), "250 ok")
        wait_for(lambda: evicted, what="the evicted flood session's 421")
        self.assertEqual(evicted[0], "421 mx.agent.test closing an idle connection: too many "
                                     "connections (#4.3.2)")
        stop.set()
        # The evicted session's log line follows its 421: wait for it.
        wait_for(lambda: "end=evicted" in self.agent.read_log(), what="the eviction's log line")
        log = self.agent.read_log()
        # The refusals before that are summarised, not one warning line each.
        self.assertLessEqual(log.count("refused client="), 2, log)

    def test_data_trickle_below_the_rate_floor_is_evictable(self):
        # DATA counts as progress only above --data-min-rate: a message dribbled at 50 B/s
        # gives its slot up to a newcomer when the table is full; it is not queued.
        self.start(["--max-connections", "1", "--reserve-percent", "0", "--evict-idle", "1",
                    "--data-min-rate", "1024", "--data-grace", "60"])
        slow = self.in_data("trickle")
        new, _ = self.newcomer_until_served(15, meanwhile=lambda: slow.send("x" * 10))
        self.assertIsNotNone(new, "the trickling DATA session was never evicted")
        self.assertEqual(slow.reply(), "421 mx.agent.test closing an idle connection: too many "
                                       "connections (#4.3.2)")
        wait_for(lambda: "end=evicted-in-data" in self.agent.read_log(), what="eviction log")
        self.assertEqual(self.records(), [])

    def test_fast_data_is_progress(self):
        # The same table, but the message arrives quickly: the newcomer is refused, the message
        # is queued.
        self.start(["--max-connections", "1", "--reserve-percent", "0", "--evict-idle", "1"])
        busy = self.in_data("fast")
        start = time.monotonic()
        while time.monotonic() - start < 2.5:  # past --evict-idle, at far above the floor
            busy.send("y" * 8192 + "\r\n")
            time.sleep(0.05)
        c = Client(self.agent.port, source="127.0.0.2")
        self.clients.append(c)
        self.assertEqual(c.reply(), "421 too many connections, try again later (#4.3.2)")
        busy.send(".\r\n")
        self.assertRegex(busy.reply(), r"^250 ok \d+ qp \d+$")

    def test_commands_without_progress_are_capped(self):
        self.start(["--max-junk-commands", "5"])
        c = self.connect()
        c.reply()
        for _ in range(3):
            self.assertEqual(c.cmd("NOOP"), "250 ok")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>"), "250 ok")  # progress: the count restarts
        for verb in ("NOOP", "RSET", "HELP", "VRFY x", "NOOP"):
            self.assertTrue(c.cmd(verb)[:3] in ("250", "214", "252"), verb)
        self.assertEqual(c.cmd("NOOP"), "421 mx.agent.test too many commands without a message; "
                                        "closing connection (#4.7.0)")
        wait_for(lambda: "end=junk-commands" in self.agent.read_log(), what="session log")

    def test_full_table_without_idle_sessions_refuses(self):
        self.start(["--max-connections", "1", "--reserve-percent", "0", "--evict-idle", "30"])
        a = self.connect()
        a.reply()
        b = self.connect()
        self.assertEqual(b.reply(), "421 too many connections, try again later (#4.3.2)")

    def test_file_limit_is_raised_or_start_refused(self):
        base = ["prlimit", "--nofile=200:200", SMTPD, "--qmail-home", self.home.path,
                "--qmail-queue", FAKEQ, "--listen", "127.0.0.1:0", "--metrics-listen", "none",
                "--admin-listen", "none", "--state-dir", os.path.join(self.dir, "st"),
                "--user", "root"]
        p = subprocess.run(base, capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 111)
        self.assertIn("--max-connections 1000 needs 3064 open files (3 per connection plus 64), "
                      "but the hard limit is 200", p.stderr)
        self.assertNotIn("Too many open files", p.stderr)


class ShutdownTest(SmtpdTestCase):
    def test_sigterm_closes_idle_sessions_with_421_and_lets_messages_finish(self):
        self.start()
        idle = self.connect()
        idle.reply()
        busy = self.connect()
        busy.reply()
        busy.cmd("MAIL FROM:<a@b.test>")
        busy.cmd("RCPT TO:<u@agent.test>")
        self.assertEqual(busy.cmd("DATA"), "354 go ahead")
        busy.send("Subject: in flight\r\n\r\nstarted")
        self.agent.proc.send_signal(signal.SIGTERM)
        self.assertEqual(idle.reply(), "421 mx.agent.test closing connection: server shutting "
                                       "down, try again later (#4.3.2)")
        busy.send(" and finished\r\n.\r\n")
        self.assertRegex(busy.reply(), r"^250 ok \d+ qp \d+$")
        self.assertEqual(busy.reply(), "421 mx.agent.test closing connection: server shutting "
                                       "down, try again later (#4.3.2)")
        self.assertEqual(self.agent.proc.wait(10), 0)
        self.assertEqual(len(self.records()), 1)

    def test_drain_limit_cuts_off_data_with_421(self):
        self.start(["--drain-seconds", "1"])
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        c.send("Subject: never finished\r\n\r\n")
        self.agent.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.reply(), "421 mx.agent.test closing connection: server shutting "
                                    "down, try again later (#4.3.2)")
        self.assertEqual(self.agent.proc.wait(10), 0)
        self.assertEqual(self.records(), [])
        self.assertIn("end=shutdown-in-data", self.agent.read_log())


class QueueEnvironmentTest(SmtpdTestCase):
    """qmail-queue (and the filters that wrap it) see what tcpserver and qmail-smtpd set."""

    def send_one(self, c, rcpt="u@agent.test"):
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt), "250 ok")
        c.cmd("DATA")
        c.send("Subject: env\r\n\r\nx\r\n.\r\n")
        self.assertRegex(c.reply(), r"^250 ok")

    def vars(self, n=0):
        with open(os.path.join(self.qdir, "%d.vars" % n)) as f:
            return json.load(f)

    def test_tcpserver_variables_without_relayclient(self):
        self.start()
        c = self.connect()
        c.reply()
        self.send_one(c)
        v = self.vars()
        self.assertEqual(v["PROTO"], "TCP")
        self.assertEqual(v["TCPREMOTEIP"], "127.0.0.1")
        self.assertEqual(v["TCPLOCALIP"], "127.0.0.1")
        self.assertEqual(v["TCPLOCALPORT"], str(self.agent.port))
        self.assertEqual(v["TCPREMOTEPORT"], str(c.sock.getsockname()[1]))
        self.assertEqual(v["TCPLOCALHOST"], "mx.agent.test")
        self.assertNotIn("RELAYCLIENT", v)

    def test_relayclient_for_relay_clients(self):
        self.home.write("relayclients", "127.0.0.0/8\n")
        self.start()
        c = self.connect()
        c.reply()
        self.send_one(c, "x@elsewhere.test")
        self.assertEqual(self.vars()["RELAYCLIENT"], "")

    def test_relayclient_after_certificate_relay(self):
        with open(self.certs.ca.cert_path) as f:
            self.home.write("clientca.pem", f.read())
        self.home.write("tlsclients", "relay@client.test\n")
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("EHLO x")
        self.assertEqual(c.cmd("STARTTLS"), "220 ready for tls")
        c.starttls(client_context(self.certs.ca.cert_path, cert=self.client))
        c.cmd("EHLO x")
        self.send_one(c, "x@elsewhere.test")
        self.assertEqual(self.vars()["RELAYCLIENT"], "")

    def test_refusal_under_tls_without_cert_relay_names_the_cert(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("EHLO x")
        c.cmd("STARTTLS")
        c.starttls(client_context(self.certs.ca.cert_path))
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.test>"),
                         "553 sorry, that domain isn't in my list of allowed rcpthosts; no valid "
                         "cert for gatewaying (#5.7.1)")


class SocketNameTest(SmtpdTestCase):
    def test_systemd_socket_named_tls_is_implicit_tls(self):
        tls = socket.socket()
        tls.bind(("127.0.0.1", 0))
        tls.listen(16)
        port = tls.getsockname()[1]
        log = open(os.path.join(self.dir, "activated.log"), "wb")
        script = ('exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=tls exec %s --qmail-home '
                  '%s --qmail-queue %s --state-dir %s --admin-listen none --metrics-listen none '
                  '--user root' % (tls.fileno(), SMTPD, self.home.path, FAKEQ,
                                   os.path.join(self.dir, "activated-state")))
        proc = subprocess.Popen(["sh", "-c", script], pass_fds=(tls.fileno(),), stdout=log,
                                stderr=log, env=dict(os.environ, FAKEQ_DIR=self.qdir))
        self.addCleanup(lambda: (proc.terminate(), proc.wait(), log.close()))
        logpath = os.path.join(self.dir, "activated.log")
        wait_for(lambda: "started" in open(logpath).read(), what="agent start")
        self.assertIn("(tls)", open(logpath).read())
        c = Client(port, implicit_ctx=client_context(verify=False))
        self.clients.append(c)
        self.assertTrue(c.reply().startswith("220 mx.agent.test ESMTP"))


class CipherTest(SmtpdTestCase):
    def setUp(self):
        super().setUp()
        # An RSA certificate, so that static-RSA and ECDHE-RSA suites can be asked for.
        rsa = self.certs.rsa_leaf("agent-rsa-%d" % id(self), dns=["agent.test"], ips=["127.0.0.1"])
        self.home.write("servercert.pem", open(rsa.pem_path).read(), 0o600)

    def s_client(self, *args):
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.agent.port,
                            "-starttls", "smtp", "-tls1_2", "-brief"] + list(args),
                           input=b"QUIT\r\n", capture_output=True, timeout=20)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace")

    def test_default_offers_forward_secret_aead_only(self):
        self.start()
        for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA256",
                     "ECDHE-RSA-AES256-SHA"):
            with self.subTest(cipher=weak):
                rc, out = self.s_client("-cipher", weak)
                self.assertNotEqual(rc, 0, out)
        rc, out = self.s_client("-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(rc, 0, out)
        self.assertIn("ECDHE-RSA-AES128-GCM-SHA256", out)

    def test_tlsserverciphers_can_widen_it(self):
        self.home.write("tlsserverciphers", "DEFAULT:AES128-SHA\n")
        self.start()
        rc, out = self.s_client("-cipher", "AES128-SHA")
        self.assertEqual(rc, 0, out)
        self.assertIn("AES128-SHA", out)


class RobustnessTest(SmtpdTestCase):
    def test_one_megabyte_command_line(self):
        self.start()
        c = self.connect()
        c.reply()
        c.send(b"MAIL FROM:<" + b"a" * (1 << 20) + b">\r\n")
        self.assertEqual(c.reply(), "500 command line too long (#5.5.2)")
        self.assertEqual(c.cmd("NOOP"), "250 ok")
        if not SANITIZED:
            self.assertLess(self.agent.rss_kib(), 64 * 1024)

    def test_large_message_is_streamed_not_held(self):
        self.start()
        def hwm():
            with open("/proc/%d/status" % self.agent.proc.pid) as f:
                return int([l for l in f if l.startswith("VmHWM:")][0].split()[1])
        before = hwm()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        self.assertEqual(c.cmd("DATA"), "354 go ahead")
        line = b"x" * 998 + b"\r\n"
        block = line * 1024  # 1 MiB
        for _ in range(32):
            c.send(block)
        c.send(b".\r\n")
        self.assertRegex(c.reply(), r"^250 ok \d+ qp \d+$")
        [(msg, env)] = self.records()
        self.assertTrue(msg.endswith(b"x" * 998 + b"\n"))
        self.assertEqual(msg.count(b"\n"), 32 * 1024 + 2)  # + the two Received lines
        grew = hwm() - before
        print("\npeak RSS grew by %d KiB for a 32 MiB message" % grew)
        if not SANITIZED:
            self.assertLess(grew, 8 * 1024)

    def test_binary_garbage(self):
        self.start()
        c = self.connect()
        c.reply()
        c.send(bytes(b for b in range(256) if b != 10) * 4 + b"\r\n")
        self.assertEqual(c.reply(), "502 unimplemented (#5.5.1)")
        self.assertEqual(c.cmd("NOOP"), "250 ok")

    def test_client_stops_in_the_middle_of_data(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        c.send("Subject: half\r\n\r\nsome of the body")
        c.close()
        wait_for(lambda: "end=eof-in-data" in self.agent.read_log(), what="eof in data")
        self.assertEqual(self.records(), [])
        rc, out = self.swaks()
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(self.records()), 1)

    def test_silent_client_times_out(self):
        self.home.write("timeoutsmtpd", "1\n")
        self.start()
        c = self.connect()
        c.reply()
        self.assertEqual(c.reply(), "451 timeout (#4.4.2)")

    def test_per_client_limit(self):
        self.start(["--max-per-client", "2"])
        a, b = self.connect(), self.connect()
        a.reply(), b.reply()
        c = self.connect()
        self.assertEqual(c.reply(), "421 too many connections from your address, try again later (#4.3.2)")

    def test_overall_limit(self):
        self.start(["--max-connections", "1"])
        a = self.connect()
        a.reply()
        b = self.connect()
        self.assertEqual(b.reply(), "421 too many connections, try again later (#4.3.2)")

    def test_500_simultaneous_connections(self):
        self.start(["--max-per-client", "1000"])
        before = self.agent.rss_kib()
        socks = []
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", self.agent.port), timeout=10)
            socks.append(s)
        greeted = 0
        for s in socks:
            if s.recv(100).startswith(b"220 "):
                greeted += 1
        self.assertEqual(greeted, 500)
        rc, out = self.swaks()  # still serving others
        self.assertEqual(rc, 0, out)
        during = self.agent.rss_kib()
        for s in socks:
            s.close()
        print("\nRSS before %d KiB, with 500 idle connections %d KiB" % (before, during))
        if not SANITIZED:
            self.assertLess(during - before, 100 * 1024)

    def test_privileges_dropped_after_bind(self):
        # The key is read as the agent's user, at start as at every reload: qmail-tls's
        # layout (the user's, mode 0640) works; root's 0600 refuses the start, naming the file.
        key = os.path.join(self.home.control, "servercert.pem")
        with self.assertRaises(AssertionError) as refused:
            self.start(["--user", "nobody"])
        self.assertIn("servercert.pem: Permission denied (policy and state are read as nobody",
                      str(refused.exception))
        os.chown(key, 65534, 65534)
        os.chmod(key, 0o640)
        self.start(["--user", "nobody"])
        with open("/proc/%d/status" % self.agent.proc.pid) as f:
            uid_line = [l for l in f if l.startswith("Uid:")][0]
        self.assertEqual(uid_line.split()[1:], ["65534"] * 4)
        rc, out = self.swaks("--tls")
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main()
