"""docs/fleet.md's walk-through, run as written: scripts/walkthrough.py runs every ```sh block
of "Standing up a fleet: a walk-through" in one bash (a CA, etcd with client certificates and
roles, three qtls-remoted nodes confined and running as qmailr, a STARTTLS sink, Prometheus,
first targets by `fleet adopt`, mail through every node, a rollout that goes through and one
that its gate rolls back, then everything stopped). This test checks what it printed and what
it left in $FLEET: every block ran, the outcomes the prose promises, and every message the
load sent arrived at the sink exactly once."""
import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, check_sanitizer_report

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "fleet.md")
SECTION = "Standing up a fleet: a walk-through"
NODES = ("mx1", "mx2", "mx3")
PROGRAM_DIRS = [os.path.join(os.path.abspath(BUILD), "services", d)
                for d in ("remoted", "shim", "ctl")]
PEERS = ("etcd", "etcdctl", "prometheus", "openssl", "curl", "setpriv", "useradd")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def missing_peer():
    """Why this machine cannot run the walk-through, or None."""
    if os.geteuid() != 0:
        return "needs root: the walk-through adds users, chowns and drops privileges"
    for p in PEERS:
        if shutil.which(p, path=SYSTEM_PATH) is None:
            return "%s is not installed (scripts/setup.sh installs it)" % p
    if subprocess.run(["/usr/bin/python3", "-c", "import aiosmtpd"],
                      capture_output=True).returncode != 0:
        return "python3-aiosmtpd is not installed (scripts/setup.sh installs it)"
    return None


def section_blocks():
    """The number of ```sh blocks in the walk-through section, counted here on its own."""
    with open(DOC) as f:
        text = f.read()
    start = text.index("\n## %s\n" % SECTION)
    end = text.find("\n## ", start + 1)
    return len(re.findall(r"^```sh$", text[start:end if end > 0 else None], re.M))


@unittest.skipIf(missing_peer(), missing_peer())
class FleetWalkthroughTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for d, prog in zip(PROGRAM_DIRS, ("qtls-remoted", "qtls-remote", "qtlsctl")):
            if not os.access(os.path.join(d, prog), os.X_OK):
                raise AssertionError("%s is not built in %s" % (prog, d))
        # The daemons run as qmailr and read files under $FLEET: every directory above it
        # must be searchable by others (mkdtemp makes 0700).
        cls.tmp = tempfile.mkdtemp(prefix="qtls-fleet-walk-")
        os.chmod(cls.tmp, 0o755)
        cls.fleet = os.path.join(cls.tmp, "fleet")
        env = {"PATH": ":".join(PROGRAM_DIRS) + ":" + SYSTEM_PATH, "FLEET": cls.fleet,
               "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
        started = time.monotonic()
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "walkthrough.py"),
                            "docs/fleet.md"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=600)
        cls.seconds = time.monotonic() - started
        cls.rc, cls.out = p.returncode, p.stdout
        with open(os.path.join(cls.tmp, "walkthrough.out"), "w") as f:
            f.write(cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def fail_with_output(self, what):
        return "%s; the walk-through printed (last 150 lines):\n%s" % (
            what, "\n".join(self.out.splitlines()[-150:]))

    def read(self, *path):
        with open(os.path.join(self.fleet, *path)) as f:
            return f.read()

    def test_every_block_ran_and_it_exited_0(self):
        self.assertEqual(self.rc, 0, self.fail_with_output("exit %d" % self.rc))
        n = section_blocks()
        self.assertGreaterEqual(n, 10)
        for i in range(1, n + 1):
            self.assertIn("walkthrough: block %d of %d done\n" % (i, n), self.out)
        self.assertNotIn(" failed (exit ", self.out)
        print("\nthe walk-through: %d blocks, %.0f s" % (n, self.seconds))

    def test_first_targets_adopted_and_acked_by_every_node(self):
        adopted = re.findall(r"^(mx[1-3]): adopted (sha256:[0-9a-f]{64}) "
                             r"\(/qtls/nodes/remote/\1/target\)$", self.out, re.M)
        self.assertEqual(sorted(n for n, _ in adopted), list(NODES),
                         self.fail_with_output("fleet adopt"))
        # The nodes start from the same policy, so they adopt the same digest.
        self.assertEqual(len({d for _, d in adopted}), 1, adopted)
        tables = self.status_tables()
        self.assertGreaterEqual(len(tables), 3, self.fail_with_output("fleet status tables"))
        # Before adopt: listed, no target. After it: every node ACKs the adopted digest.
        self.assertEqual({n: r[0] for n, r in tables[0].items()},
                         {n: "NO_TARGET" for n in NODES})
        short = adopted[0][1][:19]
        self.assertEqual(tables[1], {n: ("ACK", short, short) for n in NODES})

    def test_good_rollout_done_and_bad_one_rolled_back_by_its_gate(self):
        good = re.search(r"^rollout (r\d+-[0-9a-f]{4}): done: wave 2 promoted; every node runs "
                         r"(sha256:[0-9a-f]{64})$", self.out, re.M)
        self.assertIsNotNone(good, self.fail_with_output("no `done` line"))
        for wave, count in ((1, 1), (2, 3)):
            self.assertIn("rollout %s: wave %d (%d node(s)) ACKed; soaking 12 s"
                          % (good.group(1), wave, count), self.out)
        bad = re.search(r"^rollout (r\d+-[0-9a-f]{4}): rolled-back: wave 1: gate tls_failures "
                        r"failed: ([0-9.e+-]+) > 0\.02; 1 node\(s\) given their previous policy "
                        r"back$", self.out, re.M)
        self.assertIsNotNone(bad, self.fail_with_output("no `rolled-back` line naming the gate"))
        self.assertGreater(float(bad.group(2)), 0.02)
        self.assertIn("qtlsctl rollout start: exit 9\n", self.out)
        # rollout status names it too, and exits 12 (rolled back).
        self.assertRegex(self.out, r"rollout %s of sha256:[0-9a-f]{64}: rolled-back\n"
                         % bad.group(1))
        self.assertIn("qtlsctl rollout status: exit 12\n", self.out)
        # Afterwards every node ACKs the good rollout's policy again, mx1 by a rollback.
        short = good.group(2)[:19]
        self.assertEqual(self.status_tables()[-1], {n: ("ACK", short, short) for n in NODES})
        log = self.read("mx1", "remoted.log")
        rollback = [l for l in log.splitlines() if " op=rollback " in l]
        self.assertEqual(len(rollback), 1, log)
        self.assertIn("caller=fleet:%s " % bad.group(1), rollback[0])
        self.assertIn("gate tls_failures failed", rollback[0])
        for n in ("mx2", "mx3"):  # never in a wave of the bad rollout
            self.assertNotIn(" op=rollback ", self.read(n, "remoted.log"))
        print("\n%s\n%s" % (good.group(0), bad.group(0)))

    def test_every_message_arrived_exactly_once(self):
        self.assertEqual(self.rc, 0, self.fail_with_output("exit %d" % self.rc))
        attempts = {}
        for n in NODES:
            attempts[n] = [l.split(" ", 2) for l in self.read("load", n + ".log").splitlines()]
            self.assertEqual(self.read("load", n + ".err"), "", n)
        sent = {m for n in NODES for m, *_ in attempts[n]}
        delivered = collections.Counter(m for n in NODES for m, r, *_ in attempts[n] if r == "K")
        received = collections.Counter()
        for line in self.read("sink", "received").splitlines():
            mid, how = line.split(" ")
            self.assertTrue(mid.endswith("@fleet.example"), line)
            self.assertEqual(how, "tls", line)  # every node delivered over TLS
            received[mid[:-len("@fleet.example")]] += 1
        # Each message was answered K once (the load then moves on), was received once, and
        # nothing the shim did not report K reached the sink.
        self.assertEqual(set(delivered), sent, "messages never delivered")
        self.assertEqual(set(delivered.values()), {1})
        self.assertEqual(received, delivered)
        for n in NODES:
            self.assertGreaterEqual(sum(1 for _, r, *_ in attempts[n] if r == "K"), 10, n)
        # The deferrals were mx1's, under the bad policy, and each was retried until it left.
        deferred = [a for a in attempts["mx1"] if a[1] == "Z"]
        self.assertGreaterEqual(len(deferred), 1, "the bad policy deferred nothing on mx1")
        for _, _, why in deferred:
            self.assertIn("unable to verify server mx.partner.example", why)
        for n in ("mx2", "mx3"):
            self.assertEqual([a for a in attempts[n] if a[1] != "K"], [], n)
        total = len(sent)
        self.assertIn("load: %d messages, %d delivered; sink: %d received, %d distinct\n"
                      % (total, total, total, total), self.out)
        self.assertIn("every message arrived exactly once\n", self.out)
        print("\nload: %d messages, %d deferrals on mx1, all received once" % (total, len(deferred)))

    def test_everything_it_started_is_stopped(self):
        self.assertIn("stopped; the files are in %s\n" % self.fleet, self.out)
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.fleet in cmd:
                left.append("%s: %s" % (pid, cmd))
        self.assertEqual(left, [])
        for n in NODES:
            log = self.read(n, "remoted.log")
            check_sanitizer_report(log)
            self.assertIn("qtls-remoted stopped", log)
            # control/ is root's: started as root with --user, the daemon must judge it by the
            # identity it reads the policy as, not by the root it started as.
            self.assertNotIn("is writable by this daemon's user", log)

    def status_tables(self):
        """Each `fleet status` table printed: {node: (ACK, TARGET, APPLIED)}."""
        tables = []
        for m in re.finditer(r"^NODE +ACK +TARGET +APPLIED .*\n((?:mx\d.*\n)+)", self.out, re.M):
            rows = {}
            for line in m.group(1).splitlines():
                f = line.split()
                rows[f[0]] = (f[1], f[2], f[3])
            tables.append(rows)
        return tables


if __name__ == "__main__":
    unittest.main()
