"""qtls-rspawn as qmail-send sees it: a driver of our own plays qmail-send (the concurrency
byte, "slot messid NUL sender NUL recipient NUL" requests, "<slot><text>NUL" answers read as
they come) against qtls-rspawn, a real qtls-remoted and scripted SMTP peers (spec 1.1-1.5).
Every answer is compared with what qmail-rspawn would have made of the shim's output."""
import os
import select
import signal
import subprocess
import time
import unittest
import urllib.request

from harness import BUILD, Remoted, RemoteTestCase, rspawn, run_shim, wait_for

RSPAWN = os.path.join(BUILD, "services", "shim", "qtls-rspawn")
BODY = b"Subject: t\n\nhello\n"


class QmailSend:
    """The qmail-send side of the rspawn protocol, over real pipes."""

    def __init__(self, home, socket_path, env=None):
        e = {"PATH": "/usr/bin:/bin", "QMAILHOME": home.path, "QTLS_REMOTED_SOCKET": socket_path,
             "QTLS_QMAILQ_USER": "root"}
        e.update(env or {})
        self.proc = subprocess.Popen([RSPAWN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=e)
        self.buf = b""
        self._fill(lambda b: len(b) >= 1, 10)
        self.concurrency, self.buf = self.buf[0], self.buf[1:]

    def _fill(self, enough, timeout):
        deadline = time.time() + timeout
        while not enough(self.buf):
            left = deadline - time.time()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise AssertionError("no answer from qtls-rspawn; have %r" % self.buf)
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError("qtls-rspawn closed fd 1; have %r" % self.buf)
            self.buf += chunk

    def ask(self, slot, messid, recip="u@example.test", sender="a@sender.test"):
        self.proc.stdin.write(bytes([slot]) + messid.encode() + b"\0" + sender.encode() + b"\0" +
                              recip.encode() + b"\0")
        self.proc.stdin.flush()

    def answer(self, timeout=30):
        """(slot, text) of the next answer."""
        self._fill(lambda b: b"\0" in b[1:], timeout)
        slot, (text, self.buf) = self.buf[0], self.buf[1:].split(b"\0", 1)
        return slot, text

    def answers(self, n, timeout=60):
        got = {}
        for _ in range(n):
            slot, text = self.answer(timeout)
            got[slot] = text
        return got

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class RspawnTest(RemoteTestCase):
    def setUp(self):
        super().setUp()
        self.mess = os.path.join(self.home.path, "queue", "mess")
        os.makedirs(self.mess)
        os.makedirs(os.path.join(self.home.path, "queue", "lock"))
        self.qs = None

    def tearDown(self):
        if self.qs:
            self.qs.close()
        super().tearDown()

    def message(self, name="1/100"):
        path = os.path.join(self.mess, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(BODY)
        return name

    def start(self, routes, env=None):
        """routes: {domain: peer}; the daemon and qtls-rspawn started."""
        self.home.write("smtproutes", "".join("%s:%s:%d\n" % (d, p.host, p.port)
                                              for d, p in routes.items()))
        self.start_daemon()
        self.qs = QmailSend(self.home, self.daemon.socket, env)
        return self.qs

    def shim_says(self, recip):
        """What qmail-rspawn would give qmail-send with the shim as its child."""
        out, _, status = run_shim(self.daemon.socket, self.home,
                                  (recip.rsplit("@", 1)[1], "a@sender.test", recip), BODY)
        return rspawn(out, status)

    def test_concurrency_byte(self):
        qs = self.start({"example.test": self.peer()})
        self.assertEqual(qs.concurrency, 120)
        other = QmailSend(self.home, self.daemon.socket, {"QTLS_RSPAWN_CONCURRENCY": "7"})
        self.assertEqual(other.concurrency, 7)
        other.ask(7, self.message())
        self.assertEqual(other.answer(), (7, b"ZInternal error: delnum too big. (#4.3.5)\n"))
        other.close()

    def test_k_z_d_as_qmail_rspawn_makes_them(self):
        qs = self.start({"k.test": self.peer(),
                         "z.test": self.peer(replies={"rcpt": "451 try later"}),
                         "d.test": self.peer(replies={"rcpt": "550 no such user"}),
                         "s.test": self.peer(replies={"mail": "452 full"})})
        m = self.message()
        for slot, recip in enumerate(("u@k.test", "u@z.test", "u@d.test", "u@s.test")):
            qs.ask(slot, m, recip)
        got = qs.answers(4)
        self.assertEqual(got[0], b"K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n")
        self.assertEqual(got[1], b"Z127.0.0.2 does not like recipient.\nRemote host said: 451 "
                                 b"try later\nGiving up on 127.0.0.2.\n")
        self.assertEqual(got[2], b"D127.0.0.2 does not like recipient.\nRemote host said: 550 no "
                                 b"such user\nGiving up on 127.0.0.2.\n")
        self.assertEqual(got[3], b"ZConnected to 127.0.0.2 but sender was rejected.\nRemote host "
                                 b"said: 452 full\n")
        for slot, recip in enumerate(("u@k.test", "u@z.test", "u@d.test", "u@s.test")):
            self.assertEqual(got[slot], self.shim_says(recip), recip)
        # The same delivery path: the log line names the queue file's inode, the metrics the
        # front end.
        inode = os.stat(os.path.join(self.mess, m)).st_ino
        self.assertIn("delivery id=%d " % inode, self.daemon.read_log())
        with urllib.request.urlopen("http://%s/metrics" % self.daemon.metrics_address()) as r:
            text = r.read().decode()
        self.assertIn('qtls_remote_deliveries_total{result="success",frontend="rspawn"} 1', text)
        self.assertIn('qtls_remote_deliveries_total{result="success",frontend="shim"} 1', text)

    def test_120_deliveries_in_flight(self):
        p = self.peer(delay={"dot": 2})
        qs = self.start({"example.test": p})
        m = self.message()
        t0 = time.time()
        for slot in range(120):
            qs.ask(slot, m)
        got = qs.answers(120, timeout=120)
        elapsed = time.time() - t0
        self.assertEqual(sorted(got), list(range(120)))
        self.assertEqual(set(got.values()),
                         {b"K127.0.0.2 accepted message.\nRemote host said: 250 ok queued\n"})
        self.assertEqual(len(p.messages), 120)
        self.assertLess(elapsed, 60)  # at once: one after the other would take 240 s

    def test_local_refusals_in_spawn_c_order(self):
        qs = self.start({"example.test": self.peer()})
        good = self.message()
        os.symlink(os.path.join(self.mess, good), os.path.join(self.mess, "1", "101"))
        os.makedirs(os.path.join(self.mess, "1", "102"))
        self.message("1/103")
        os.chown(os.path.join(self.mess, "1", "103"), 65534, 65534)
        cases = [
            (0, "1/999", "u@example.test", b"Zqmail-spawn unable to open message. (#4.3.0)\n"),
            (1, "1/101", "u@example.test", b"K127.0.0.2 accepted message.\nRemote host said: "
                                           b"250 ok queued\n"),  # a symlink passes, as stock
            (2, "1/102", "u@example.test", b"ZSorry, message has wrong type. (#4.3.5)\n"),
            (3, "1/103", "u@example.test", b"ZSorry, message has wrong owner. (#4.3.5)\n"),
            (4, good, "nobody", b"DSorry, address must include host name. (#5.1.3)\n"),
            (5, "1/a", "u@example.test", b"DInternal error: messid has nonnumerics. (#5.3.5)\n"),
            (6, "/1", "u@example.test", b"DInternal error: messid has nonnumerics. (#5.3.5)\n"),
            (7, "1" * 101, "u@example.test", b"DInternal error: messid too long. (#5.3.5)\n"),
            (8, "", "u@example.test", b"DInternal error: messid too short. (#5.3.5)\n"),
            (200, good, "u@example.test", b"ZInternal error: delnum too big. (#4.3.5)\n"),
        ]
        for slot, messid, recip, _ in cases:
            qs.ask(slot, messid, recip)
        got = qs.answers(len(cases))
        for slot, messid, recip, want in cases:
            self.assertEqual(got[slot], want, (slot, messid))

    def test_slot_in_use(self):
        qs = self.start({"example.test": self.peer(delay={"dot": 2})})
        m = self.message()
        qs.ask(5, m)
        time.sleep(0.5)
        qs.ask(5, m)
        self.assertEqual(qs.answer(), (5, b"ZInternal error: delnum in use. (#4.3.5)\n"))
        self.assertEqual(qs.answer(), (5, b"K127.0.0.2 accepted message.\nRemote host said: "
                                          b"250 ok queued\n"))

    def test_daemon_killed_after_the_dot_says_possible_duplicate(self):
        p = self.peer(delay={"dot": 5})
        qs = self.start({"example.test": p})
        m = self.message()
        for slot in range(3):
            qs.ask(slot, m)
        wait_for(lambda: p.dots_seen == 3, what="the final dots at the peer")
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        got = qs.answers(3)
        want = (b"ZConnected to 127.0.0.2 but connection died. qtls-remote: connection closed "
                b"before an answer from qtls-remoted at %s: daemon stopped or crashed, after "
                b"the final dot. Possible duplicate! (#4.4.2)\n" % self.daemon.socket.encode())
        self.assertEqual(set(got.values()), {want}, got)

    def test_daemon_killed_mid_delivery_then_back(self):
        p = self.peer(delay={"rcpt": 5})
        qs = self.start({"example.test": p})
        m = self.message()
        for slot in range(10):
            qs.ask(slot, m)
        wait_for(lambda: sum(c.startswith("RCPT") for c in p.transcript) == 10,
                 what="10 RCPTs at the peer")
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        got = qs.answers(10)
        want = (b"Zqtls-remote: connection closed before an answer from qtls-remoted at %s: "
                b"daemon stopped or crashed. (#4.3.0)\n" % self.daemon.socket.encode())
        self.assertEqual(set(got.values()), {want})
        time.sleep(6)  # the RCPT replies come; nothing can be sent any more
        self.assertEqual(p.messages, [])
        # A new daemon on the same socket: the next delivery reaches it.
        self.daemon.log.close()
        self.daemon = Remoted(self.home, self.dir)
        self.home.write("smtproutes", "example.test:%s:%d\n" % (p.host, p.port))
        qs.ask(3, m)
        self.assertEqual(qs.answer(), (3, b"K127.0.0.2 accepted message.\nRemote host said: "
                                          b"250 ok queued\n"))

    def test_daemon_down_is_the_shims_z(self):
        self.home.write("smtproutes", "example.test:127.0.0.2:25\n")
        path = os.path.join(self.dir, "nobody-here.sock")
        self.qs = QmailSend(self.home, path)
        self.qs.ask(0, self.message())
        self.assertEqual(self.qs.answer(),
                         (0, b"Zqtls-remote: unable to connect to qtls-remoted at %s: No such "
                             b"file or directory. (#4.3.0)\n" % path.encode()))

    def test_eof_finishes_what_is_in_flight(self):
        p = self.peer(delay={"dot": 2})
        qs = self.start({"example.test": p})
        m = self.message()
        for slot in range(5):
            qs.ask(slot, m)
        qs.proc.stdin.close()  # qmail-send is gone
        got = qs.answers(5)
        self.assertEqual(len(set(got.values())), 1)
        self.assertTrue(got[0].startswith(b"K"))
        self.assertEqual(qs.proc.wait(10), 0)
        self.assertEqual(len(p.messages), 5)

    def test_links_libc_only(self):
        libs = subprocess.run(["ldd", RSPAWN], capture_output=True, text=True).stdout
        names = sorted(l.split()[0] for l in libs.splitlines() if l.strip())
        allowed = {"linux-vdso.so.1", "libc.so.6"}
        extra = [n for n in names if n not in allowed and not n.startswith("/lib64/ld-linux")]
        self.assertEqual(extra, [], names)


if __name__ == "__main__":
    unittest.main()
