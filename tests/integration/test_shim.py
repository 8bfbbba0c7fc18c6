"""The qmail-remote drop-in itself: argv and fd contract, every way the daemon can fail it,
and spec 1.3's translation of what it prints."""
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import SHIM, RemoteTestCase, rspawn, run_shim, wait_for


class FakeDaemon:
    """A Unix socket server that answers with fixed bytes: for malformed-answer cases only."""

    def __init__(self, path, answer=None, chunks=(), delay=0.0, hold=30):
        self.path, self.hold = path, hold
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.answer, self.chunks, self.delay = answer, chunks, delay
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while conn.recv(65536):  # the whole request, as the real daemon reads it
                pass
            for data, pause in self.chunks:
                time.sleep(pause)
                conn.sendall(data)
            if self.answer is None:
                time.sleep(self.hold)
                return
            time.sleep(self.delay)
            conn.sendall(self.answer)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ShimTest(RemoteTestCase):
    ARGV = ("example.test", "a@b.test", "u@example.test")

    def shim(self, sock, argv=None, **kw):
        out, err, rc = run_shim(sock, self.home, argv or self.ARGV, **kw)
        self.assertEqual(err, b"")
        self.assertEqual(rc, 0)
        return out

    def test_links_only_libc(self):
        libs = subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout
        names = sorted(l.split()[0] for l in libs.splitlines() if l.strip())
        # The C++ runtime is linked statically; at run time only the C library is loaded.
        allowed = {"linux-vdso.so.1", "libc.so.6"}
        extra = [n for n in names if n not in allowed and not n.startswith("/lib64/ld-linux")]
        self.assertEqual(extra, [], names)
        self.assertIn("libc.so.6", names)

    def test_invoked_improperly(self):
        out = self.shim("/nonexistent.sock", argv=("example.test", "a@b"))
        self.assertEqual(out, b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0")

    def test_home_missing(self):
        out = self.shim("/nonexistent.sock", env={"QMAILHOME": "/nonexistent/qmail"})
        self.assertEqual(out, b"ZUnable to switch to home directory. (#4.3.0)\n\0")

    def test_daemon_not_running(self):
        path = os.path.join(self.dir, "absent.sock")
        out = self.shim(path)
        self.assertEqual(out, ("Zqtls-remote: unable to connect to qtls-remoted at %s: No such "
                               "file or directory. (#4.3.0)\n\0" % path).encode())
        self.assertEqual(rspawn(out, 0)[:1], b"Z")

    def test_stale_socket_file(self):
        path = os.path.join(self.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        out = self.shim(path)
        self.assertEqual(out, ("Zqtls-remote: unable to connect to qtls-remoted at %s: "
                               "Connection refused. (#4.3.0)\n\0" % path).encode())

    def test_daemon_killed_mid_delivery(self):
        p = self.peer(stall="data")
        self.route("example.test", p)
        d = self.start_daemon()
        result = {}
        t = threading.Thread(target=lambda: result.update(
            zip(("out", "err", "rc"), run_shim(d.socket, self.home, self.ARGV))))
        t.start()
        wait_for(lambda: "DATA" in p.transcript, what="DATA at the peer")
        d.proc.send_signal(signal.SIGKILL)
        t.join(30)
        self.assertEqual(result["err"], b"")
        self.assertEqual(result["rc"], 0)
        self.assertEqual(result["out"], ("Zqtls-remote: connection closed before an answer from "
                                         "qtls-remoted at %s: daemon stopped or crashed. (#4.3.0)\n\0"
                                         % d.socket).encode())
        self.assertEqual(p.messages, [])  # nothing reached the peer, nothing reported delivered

    def test_uid_not_in_allow_list(self):
        p = self.peer()
        self.route("example.test", p)
        self.start_daemon(allow="4242")
        out = self.deliver(self.ARGV)
        self.assertEqual(out, b"Zqtls-remoted refused uid 0: not in its allow-list. (#4.3.0)\n\0")
        self.assertEqual(p.transcript, [])
        self.assertIn("intake: refused uid=0", self.daemon.read_log())

    def test_too_many_deliveries_are_deferred(self):
        p = self.peer(stall="data")
        self.route("example.test", p)
        d = self.start_daemon(args=["--max-deliveries", "1"])
        first = threading.Thread(target=run_shim, args=(d.socket, self.home, self.ARGV),
                                 kwargs={"timeout": 120}, daemon=True)
        first.start()
        wait_for(lambda: "DATA" in p.transcript, what="first delivery at DATA")
        out = self.deliver(self.ARGV)
        self.assertEqual(out, b"Zqtls-remoted has 1 deliveries in progress (--max-deliveries). "
                              b"(#4.3.0)\n\0")

    def test_message_from_a_pipe(self):
        p = self.peer()
        self.route("example.test", p)
        self.start_daemon()
        out = self.deliver(self.ARGV, message=b"Subject: piped\n\nbody\n", pipe=True)
        self.assertTrue(out.startswith(b"r\0K127.0.0.2 accepted message."), out)
        self.assertEqual(p.messages[0], b"Subject: piped\r\n\r\nbody\r\n")

    def test_message_read_from_current_offset(self):
        # qmail-rspawn opens the message at offset 0; the daemon reads from the fd's offset.
        p = self.peer()
        self.route("example.test", p)
        self.start_daemon()
        out = self.deliver(self.ARGV, message=b"Subject: x\n\n" + b"y" * 200000 + b"\n")
        self.assertTrue(out.startswith(b"r\0K"), out)
        self.assertEqual(len(p.messages[0]), 12 + 2 + 200000 + 2)

    def fake(self, **kw):
        self.fakes = getattr(self, "fakes", 0) + 1
        path = os.path.join(self.dir, "fake%d.sock" % self.fakes)
        f = FakeDaemon(path, **kw)
        self.addCleanup(f.close)
        return path

    def test_malformed_answers(self):
        cases = [b"garbage", b"5:Rabc\0,", b"7:RKx\0Zy\0,", b"3:Rr\0,", b"4:R\0K\0,",
                 b"6:RKnonul,", b"999999999:", b"7:Xstuff\0,"]
        for answer in cases:
            with self.subTest(answer=answer):
                path = self.fake(answer=answer)
                out = self.shim(path)
                self.assertEqual(out, ("Zqtls-remote: malformed answer from qtls-remoted at %s. "
                                       "(#4.3.0)\n\0" % path).encode())

    def test_answer_cut_short(self):
        path = self.fake(answer=b"30:RK127.0.0.2 acc")
        out = self.shim(path)
        self.assertEqual(out, ("Zqtls-remote: connection closed before an answer from qtls-remoted "
                               "at %s: answer cut short. (#4.3.0)\n\0" % path).encode())

    def test_silent_daemon_times_out_no_sooner_than_the_floor(self):
        # QTLS_REMOTE_TIMEOUT below three keepalive intervals (30 s) is raised to 30 s: a shim
        # must not give up on a daemon that is still working.
        path = self.fake(answer=None, hold=40)
        t0 = time.time()
        out = self.shim(path, env={"QTLS_REMOTE_TIMEOUT": "1"})
        self.assertGreaterEqual(time.time() - t0, 29.5)
        self.assertEqual(out, ("Zqtls-remote: timed out waiting for qtls-remoted at %s: no answer "
                               "for 30 seconds. (#4.3.0)\n\0" % path).encode())

    def test_keepalives_extend_the_wait(self):
        # 36 s in all, more than the 30 s timeout, with a keepalive every 12 s.
        keep = [(b"1:.,", 12)] * 3
        path = self.fake(answer=b"10:Rr\0Kdone\n\0,", chunks=keep)
        t0 = time.time()
        out = self.shim(path, env={"QTLS_REMOTE_TIMEOUT": "30"})
        self.assertGreater(time.time() - t0, 35)
        self.assertEqual(out, b"r\0Kdone\n\0")


class RspawnTranslationTest(unittest.TestCase):
    """qtls's qmail-rspawn translation (shimproto/rspawn_report.h, run through
    tests/tools/rspawn_translate), checked against spec 1.3's table."""

    def test_table(self):
        k = b"K192.0.2.7 accepted message.\nRemote host said: 250 ok\n"
        self.assertEqual(rspawn(b"r\0" + k + b"\0", 0), k)
        h = b"192.0.2.7 does not like recipient.\nRemote host said: 550 no\n"
        self.assertEqual(rspawn(b"h" + h + b"\0DGiving up on 192.0.2.7.\n\0", 0),
                         b"D" + h + b"Giving up on 192.0.2.7.\n")
        self.assertEqual(rspawn(b"s" + h + b"\0DGiving up on 192.0.2.7.\n\0", 0),
                         b"Z" + h + b"Giving up on 192.0.2.7.\n")
        self.assertEqual(rspawn(b"r\0Zlater\n\0", 0), b"Zlater\n")
        self.assertEqual(rspawn(b"Zfail\n\0", 0), b"Zfail\n")
        self.assertEqual(rspawn(b"r\0", 0), b"D")
        self.assertEqual(rspawn(b"no nul", 0), b"D")
        self.assertEqual(rspawn(b"sno nul", 0), b"Z")
        self.assertEqual(rspawn(b"", 0), b"Zqmail-remote produced no output.\n")
        self.assertEqual(rspawn(b"x", -9), b"Zqmail-remote crashed.\n")
        self.assertEqual(rspawn(b"x", 111), b"ZUnable to run qmail-remote.\n")
        self.assertEqual(rspawn(b"x", 100), b"DUnable to run qmail-remote.\n")


if __name__ == "__main__":
    unittest.main()
