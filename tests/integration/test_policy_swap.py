"""Compile, then swap, under load: policies of 1000 files applied in a loop while deliveries
run. Every delivery's log line names a generation and digest whose content it actually used
(the level it asked for is that generation's), no message is lost or doubled, and a
delivery's latency does not move while the applies run (validation, commit and compile are
off the event loop)."""
import re
import statistics
import threading
import time
import unittest

from harness import RemoteTestCase, server_context
from test_admin import unix_api

ARGV = ("example.test", "a@sender.test", "u@example.test")
BULK = 1000


def policy(level, tag):
    """A whole policy: the level for example.test and BULK notlshosts/ files named by tag."""
    files = {"tlspolicy": "example.test %s\n" % level}
    for i in range(BULK):
        files["notlshosts/%s-%04d.example" % (tag, i)] = ""
    return files


class PolicySwapTest(RemoteTestCase):
    def setUp(self):
        super().setUp()
        good = self.certs.leaf("mx-swap", dns=["mx.test"], ips=["127.0.0.2"])
        self.p = self.peer(server_ctx=server_context(good), starttls=True)
        self.route("example.test", self.p)
        self.start_daemon()
        self.api = unix_api(self.daemon.admin_socket)

    def deliver_timed(self):
        start = time.monotonic()
        out = self.deliver(ARGV)
        took = time.monotonic() - start
        self.assertTrue(out.startswith(b"r\0K"), out)
        return took

    def test_every_delivery_uses_the_generation_it_logs_and_latency_holds(self):
        level_of = {}  # generation -> the level its tlspolicy gives example.test
        digest_of = {}

        def apply(level, tag):
            cur = self.api.get()
            r = self.api.put(cur.generation, policy(level, tag), replace=True)
            self.assertTrue(r.applied)
            level_of[r.generation_after] = level
            digest_of[r.generation_after] = r.digest_after
            return r

        first = apply("none", "a")
        # Baseline: the same deliveries with no change running.
        base = [self.deliver_timed() for _ in range(20)]

        # Under load: a thread applies whole 1000-file policies back to back, alternating the
        # level; deliveries run meanwhile.
        stop = threading.Event()
        durations, errors = [], []

        def churn():
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    start = time.monotonic()
                    apply("encrypt" if n % 2 else "none", "b" if n % 2 else "a")
                    durations.append(time.monotonic() - start)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=churn)
        t.start()
        loaded = []
        deadline = time.monotonic() + 30
        while (len(durations) < 4 or len(loaded) < 40) and time.monotonic() < deadline:
            loaded.append(self.deliver_timed())
        stop.set()
        t.join(60)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(durations), 4, "too few applies to measure anything")

        # Every delivery: its log line's generation and digest are one the API reported, and
        # the level it asked for is that generation's.
        lines = re.findall(r"delivery id=\S+ gen=(\d+) digest=(\S+) .* level=(\w+)/(\w+) ",
                           self.daemon.read_log())
        self.assertEqual(len(lines), len(base) + len(loaded))
        used = set()
        for gen, digest, requested, achieved in lines:
            gen = int(gen)
            self.assertIn(gen, level_of, "a delivery logged a generation never applied")
            self.assertEqual(digest, digest_of[gen])
            self.assertEqual(requested, level_of[gen], "generation %d" % gen)
            self.assertEqual(achieved, "encrypt" if requested == "encrypt" else "none")
            used.add(gen)
        self.assertGreater(len(used), 2, "the deliveries did not span several generations")
        # Nothing lost or doubled: one message at the peer per K.
        self.assertEqual(len(self.p.messages), len(base) + len(loaded))
        self.assertGreaterEqual(first.generation_after, 2)

        b_med, l_med = statistics.median(base), statistics.median(loaded)
        b_max, l_max = max(base), max(loaded)
        a_med = statistics.median(durations)
        print("\napply of %d files: median %.0f ms over %d applies; delivery latency: "
              "baseline median %.0f ms max %.0f ms (%d), during applies median %.0f ms "
              "max %.0f ms (%d)" % (BULK, a_med * 1000, len(durations), b_med * 1000,
                                    b_max * 1000, len(base), l_med * 1000, l_max * 1000,
                                    len(loaded)))
        # An apply that held the event loop would add up to its own duration to the
        # deliveries that overlap it; the margin is well under that.
        self.assertLess(l_med, b_med + 0.25 * a_med + 0.05)
        self.assertLess(l_max, b_max + a_med)


if __name__ == "__main__":
    unittest.main()
