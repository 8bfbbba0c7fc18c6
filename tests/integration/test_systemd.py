"""systemd integration: the daemons speak the sd_notify protocol (Type=notify) to a
NOTIFY_SOCKET played here as the service manager plays it (READY=1 with a STATUS= line naming
the policy generation, RELOADING=1 and READY=1 around SIGHUP, STOPPING=1, WATCHDOG=1 every half
WatchdogSec from the event loop); and the shipped units pass `systemd-analyze verify` and
score no worse than the exposure recorded here in `systemd-analyze security --offline`."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, RemoteTestCase, Remoted

UNITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "systemd")
# The exposure each unit may have at most (systemd 252's scale, 0 safest to 10): remoted has
# nothing to keep but the network; the agent must still run a setuid qmail-queue.
THRESHOLD = {"qtls-remoted.service": 2.5, "qtls-smtpd.service": 4.5}
BINARIES = {"qtls-remoted": os.path.join(BUILD, "services", "remoted", "qtls-remoted"),
            "qtls-smtpd": os.path.join(BUILD, "agent", "qtls-smtpd")}


class NotifyTest(RemoteTestCase):
    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(10)

    def tearDown(self):
        self.sock.close()
        super().tearDown()

    def messages_until(self, wanted):
        """Datagrams until one has the line `wanted`; all of them, in order."""
        got = []
        deadline = time.time() + 10
        while time.time() < deadline:
            msg = self.sock.recv(4096).decode()
            got.append(msg)
            if wanted in msg.split("\n"):
                return got
        raise AssertionError("no %s among %r" % (wanted, got))

    def test_ready_reload_watchdog_stopping(self):
        os.environ["NOTIFY_SOCKET"] = self.path
        os.environ["WATCHDOG_USEC"] = "400000"
        try:
            d = self.start_daemon()
        finally:
            del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
        ready = self.messages_until("READY=1")[-1]
        self.assertRegex(ready, r"STATUS=policy generation 1 sha256:[0-9a-f]{64}; 0 deliveries "
                                r"in flight")
        # Fed from the event loop, every half WatchdogSec: several in a second.
        t0 = time.time()
        pings = 0
        while time.time() - t0 < 1.0:
            if "WATCHDOG=1" in self.sock.recv(4096).decode().split("\n"):
                pings += 1
        self.assertGreaterEqual(pings, 3)
        self.home.write("tlspolicy", "example.test encrypt\n")
        d.proc.send_signal(signal.SIGHUP)
        seen = [m for m in self.messages_until("READY=1") if m != "WATCHDOG=1"]
        self.assertTrue(seen[0].startswith("RELOADING=1"), seen)
        self.assertIn("STATUS=policy generation 2 ", seen[-1])
        d.proc.send_signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", self.messages_until("STOPPING=1")[-1])
        d.proc.wait(20)


class UnitsTest(unittest.TestCase):
    def units(self):
        """The shipped units in a directory of their own, with ExecStart= pointing at the
        programs of this build (verify checks that they exist)."""
        d = tempfile.mkdtemp(prefix="qtls-units-")
        for name in os.listdir(UNITS):
            with open(os.path.join(UNITS, name)) as f:
                text = f.read()
            for prog, path in BINARIES.items():
                text = re.sub(r"(ExecStart=)\S*/%s\b" % prog, r"\g<1>" + path, text)
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        return d

    def test_systemd_analyze_verify(self):
        d = self.units()
        for name in sorted(os.listdir(d)):
            p = subprocess.run(["systemd-analyze", "verify", os.path.join(d, name)],
                               capture_output=True, text=True, cwd=d)
            self.assertEqual((p.returncode, p.stderr), (0, ""), name)

    def test_exposure_at_most_the_recorded_threshold(self):
        d = self.units()
        for name, limit in THRESHOLD.items():
            p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                                "--threshold=%d" % round(limit * 10), os.path.join(d, name)],
                               capture_output=True, text=True)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
            self.assertIsNotNone(m, p.stdout + p.stderr)
            self.assertLessEqual(float(m.group(1)), limit, name + "\n" + p.stdout)
            self.assertEqual(p.returncode, 0, name + "\n" + p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
