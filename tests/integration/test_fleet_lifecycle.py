"""A fleet's day one, its housekeeping and a rollout watched, against a real etcd and real
qtls-remoted nodes (docs/fleet.md): `qtlsctl fleet adopt` makes each node's policy in force
its target, so that a rollout can start at once; `qtlsctl fleet prune` and the pruning after
each rollout delete the bundles nothing names any more, and only those; `qtlsctl rollout
watch` shows a rollout as it goes, redrawn on a terminal or a line per change."""
import json
import os
import pty
import queue
import select
import subprocess
import threading
import time
import unittest

from fleet_harness import NODES, QTLSCTL, FleetNodesTestCase, wait_status
from harness import wait_for
from test_admin import unix_api


class FleetAdoptTest(FleetNodesTestCase):
    def adopt(self, *nodes, force=False):
        args = ["adopt", "--component", "remote"]
        for n in nodes:
            args += ["--node", "%s=unix://%s" % (n, self.nodes[n].admin_socket)]
        return self.etcd.fleet(*(args + (["--force"] if force else [])))

    def test_adopt_makes_each_policy_in_force_the_target(self):
        self.start_nodes(NODES[:2])
        # Two hosts that were run by hand: each its own policy, neither has a target.
        for n, level in (("node1", "may"), ("node2", "encrypt")):
            api = unix_api(self.nodes[n].admin_socket)
            api.put(api.get().generation, {"tlspolicy": "partner.test %s\n" % level})
        before = {n: unix_api(d.admin_socket).get() for n, d in self.nodes.items()}
        new = self.bundle("new", {"tlspolicy": "partner.test verify\n"})
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", new)
        self.assertEqual(rc, 8, out + err)
        self.assertIn("node node1 has no target", err)
        self.assertIn("qtlsctl fleet adopt", err)

        rc, out, err = self.adopt("node1", "node2")
        self.assertEqual(rc, 0, out + err)
        for n in ("node1", "node2"):
            self.assertIn("%s: adopted %s (/qtls/nodes/remote/%s/target)"
                          % (n, before[n].digest, n), out)
            t = self.etcd.get_json("/qtls/nodes/remote/%s/target" % n)
            self.assertEqual((t["digest"], t.get("provisional", False)),
                             (before[n].digest, False))
            manifest = self.etcd.get_json("/qtls/bundles/remote/" + before[n].digest)
            self.assertEqual(manifest["digest"], before[n].digest)
            # The node ACKs its own policy and applies nothing: no new generation.
            wait_status(self.etcd, "remote", n,
                        lambda s, d=before[n].digest: s.get("ack") == "ACK"
                        and s.get("target_digest") == d, what="ACK of the adopted target")
            self.assertEqual(unix_api(self.nodes[n].admin_socket).get().generation,
                             before[n].generation)

        # Again: nothing to do. After a local change: refused, unless --force.
        rc, out, err = self.adopt("node1")
        self.assertEqual((rc, out.strip()),
                         (0, "node1: already targets %s" % before["node1"].digest), err)
        api = unix_api(self.nodes["node1"].admin_socket)
        api.put(api.get().generation, {"tlspolicy": "partner.test encrypt\n"})
        changed = api.get().digest
        rc, out, err = self.adopt("node1")
        self.assertEqual(rc, 5, out + err)
        self.assertIn("node1: already targets %s, not the %s in force; --force replaces it"
                      % (before["node1"].digest, changed), err)
        rc, out, err = self.adopt("node1", force=True)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("node1: adopted " + changed, out)

        # Day one is over: a rollout starts and ends on every node.
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", new,
                                    "--soak", "1s", "--interval", "1s")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("done: wave 2 promoted", out)
        self.assertEqual(set(self.applied().values()), {new})

    def test_adopt_refuses_the_other_component_and_a_dead_socket(self):
        self.start_nodes(NODES[:1])
        rc, out, err = self.etcd.fleet("adopt", "--component", "smtpd", "--node",
                                       "node1=unix://" + self.nodes["node1"].admin_socket)
        self.assertEqual(rc, 4, out + err)
        self.assertIn("is qtls-remoted, not the smtpd component's qtls-smtpd", err)
        rc, out, err = self.etcd.fleet("adopt", "--component", "remote", "--node",
                                       "node1=unix:///nonexistent/admin.sock")
        self.assertEqual(rc, 3, out + err)
        self.assertEqual(self.etcd.get("/qtls/nodes/remote/node1/target"), "")


class FleetPruneTest(FleetNodesTestCase):
    def age(self, digest, seconds):
        """Makes a bundle look stored `seconds` ago (its manifest's creation time)."""
        key = "/qtls/bundles/remote/" + digest
        m = self.etcd.get_json(key)
        m["created"] = time.time() - seconds
        self.etcd.ctl("put", key, json.dumps(m))

    def present(self, digest):
        keys = self.etcd.ctl("get", "--prefix", "--keys-only",
                             "/qtls/bundles/remote/" + digest).stdout.split()
        return len(keys)  # the manifest and its chunks

    def prune(self, *args):
        return self.etcd.fleet("prune", "--component", "remote", *args)

    def test_prune_keeps_what_targets_and_recent_rollouts_name(self):
        self.start_nodes(NODES[:2])
        a = self.baseline({"tlspolicy": "partner.test may\n"})
        c = self.bundle("c", {"tlspolicy": "partner.test encrypt\n"})
        d = self.bundle("d", {"tlspolicy": "partner.test verify\n"})
        for new in (c, d):
            rc, out, err = self.rollout("start", "--component", "remote", "--digest", new,
                                        "--soak", "1s", "--interval", "1s")
            self.assertEqual(rc, 0, out + err)
            self.assertNotIn("pruned", out)  # nothing old enough to go
        first = self.etcd.ctl("get", "--prefix", "--keys-only", "/qtls/history/remote/")
        self.assertEqual(len(first.stdout.split()), 1, first.stdout)  # the first rollout, kept
        b = self.bundle("b", {"tlspolicy": "other.test encrypt\n"})  # named by nothing
        e = self.bundle("e", {"tlspolicy": "other.test verify\n"})   # named by nothing, young
        for digest in (a, b, c, d):
            self.age(digest, 7200)

        # A dry run first: it says what would go and deletes nothing.
        rc, out, err = self.prune()
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"would delete bundle %s \(\d+ bytes, stored [-0-9 :]+ by \S+\)"
                         % b)
        self.assertNotIn(e, out)
        for digest in (a, c, d):
            self.assertNotIn("bundle " + digest, out)
        self.assertIn("kept: 3 bundle(s) a target, a candidate or the last 5 rollout(s) name, "
                      "1 younger than 3600 s", out)
        self.assertIn("dry run: 1 bundle(s) and 0 rollout record(s) would be deleted", out)
        self.assertGreaterEqual(self.present(b), 2)

        # The rollout in etcd is kept whatever --keep-rollouts says: a rollback of one still
        # running needs the policy its nodes had before (`c` here).
        rc, out, err = self.prune("--keep-rollouts", "0", "--min-age", "0")
        self.assertEqual(rc, 0, err)
        self.assertNotIn(c, out)
        self.assertIn("would delete bundle " + a, out)

        # Only the last rollout kept: the first one's record goes, and with it the only
        # reference to `a` (its nodes' previous policy); `c` is the last one's previous.
        rc, out, err = self.prune("--keep-rollouts", "1", "--apply")
        self.assertEqual(rc, 0, err)
        self.assertIn("deleted 2 bundle(s) and 1 rollout record(s)", out)
        self.assertEqual((self.present(a), self.present(b)), (0, 0))
        self.assertGreaterEqual(self.present(c), 2)
        self.assertGreaterEqual(self.present(d), 2)
        self.assertGreaterEqual(self.present(e), 2)
        self.assertEqual(self.etcd.ctl("get", "--prefix", "--keys-only",
                                       "/qtls/history/remote/").stdout.split(), [])

        # Pruning after a rollout: an old bundle nothing names goes by itself.
        f = self.bundle("f", {"tlspolicy": "other.test may\n"})
        self.age(f, 7200)
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", e,
                                    "--soak", "1s", "--interval", "1s")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("pruned 1 bundle(s) no target, candidate or the last 5 rollouts name", out)
        self.assertEqual(self.present(f), 0)
        self.assertGreaterEqual(self.present(d), 2)  # the previous policy of the last rollout
        # The nodes still fetch what they are told: a target by hand to a kept bundle ACKs.
        rc, _, err = self.etcd.fleet("target", "--component", "remote", "--node", "node1",
                                     "--digest", d)
        self.assertEqual(rc, 0, err)
        wait_status(self.etcd, "remote", "node1",
                    lambda s: s.get("ack") == "ACK" and s.get("applied_digest") == d,
                    what="node1 on a kept bundle")



class FleetRecordTest(FleetNodesTestCase):
    def test_a_record_that_counted_waves_from_0_is_read_as_the_same_wave(self):
        # As a qtlsctl that counted from 0 left it: paused in its second wave (index 1).
        self.etcd.ctl("put", "/qtls/rollouts/remote", json.dumps({
            "id": "r1-0000", "component": "remote", "digest": "sha256:" + "0" * 64,
            "waves": ["1", "100%"], "wave": 1, "state": "PAUSED", "nodes": ["node1", "node2"],
            "reason": "paused by a person"}))
        rc, out, err = self.rollout("status", "--component", "remote")
        self.assertEqual(rc, 11, out + err)
        self.assertIn("wave 2 of 2 (1,100%), 2 node(s)", out)


class FleetWatchTest(FleetNodesTestCase):
    def watch_cmd(self, *extra):
        return [QTLSCTL, "rollout", "--etcd", self.etcd.url, "--etcd-ca", self.certs.ca.cert_path,
                "--etcd-cert", self.etcd.admin.cert_path, "--etcd-key", self.etcd.admin.key_path,
                "watch", "--component", "remote"] + list(extra)

    def test_plain_watch_prints_each_change_and_ends_with_the_rollout(self):
        self.start_nodes(NODES[:2])
        old = self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", new,
                                    "--waves", "1,100%", "--soak", "10s", "--interval", "1s",
                                    "--on-node-loss", "rollback", "--detach")
        self.assertEqual(rc, 0, out + err)
        # Not a terminal: one line per change, read by a thread so that a line that never comes
        # fails the test instead of hanging it.
        watch = subprocess.Popen(self.watch_cmd(), stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (watch.poll() is None and watch.kill(), watch.wait(),
                                 watch.stdout.close()))
        arrived = queue.Queue()
        threading.Thread(target=lambda: [arrived.put(l) for l in watch.stdout] + [arrived.put(None)],
                         daemon=True).start()
        driver, log = self.rollout_bg("resume", "--component", "remote")
        lines = []

        def saw(text):
            while not any(text in line for line in lines):
                try:
                    line = arrived.get(timeout=60)
                except queue.Empty:
                    return False
                if line is None:
                    return False
                lines.append(line.rstrip("\n"))
            return True
        self.assertTrue(saw("wave 1 (1 node(s)) ACKed; soaking 10 s"), lines)
        self.assertTrue(saw("node node1: ACK on the new policy"), lines)
        # The canary dies during its soak: the watcher says so, the wave is rolled back.
        self.nodes["node1"].stop()
        self.assertTrue(saw("node node1: no live status lease"), lines)
        self.assertEqual(watch.wait(60), 12, "\n".join(lines))  # rolled back
        self.assertTrue(saw(": rolled-back: "), lines)  # the last line: how it ended
        rest = "\n".join(lines)
        self.assertIn("wave 1: node(s) lost during the soak: node1 (no live status lease)", rest)
        self.assertRegex(rest, r"rollout r\d+-[0-9a-f]{4}: rolled-back: ")
        self.assertIn("driven by ", "\n".join(lines))
        self.assertEqual(driver.wait(60), 9)
        self.assertEqual(self.etcd.get_json("/qtls/nodes/remote/node1/target")["digest"], old)

    def test_watch_on_a_terminal_redraws_the_view(self):
        self.start_nodes(NODES[:2])
        self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        driver, _ = self.rollout_bg("start", "--component", "remote", "--digest", new,
                                    "--waves", "1,100%", "--soak", "4s", "--interval", "1s")
        wait_for(lambda: self.state().get("id"), what="the rollout in etcd")
        main, sub = pty.openpty()
        watch = subprocess.Popen(self.watch_cmd(), stdin=sub, stdout=sub, stderr=sub)
        os.close(sub)
        self.addCleanup(lambda: (watch.poll() is None and watch.kill(), watch.wait()))
        seen = b""

        def read_until(pred):
            nonlocal seen
            while not pred(seen):
                ready, _, _ = select.select([main], [], [], 60)
                if not ready:
                    return False
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the watcher exited and the pty closed
                    return pred(seen)
                if not chunk:
                    return pred(seen)
                seen += chunk
            return True
        self.assertTrue(read_until(lambda b: b"s of 4 s left" in b), seen)
        self.assertTrue(read_until(lambda b: b"done: wave 2 promoted" in b), seen)
        os.close(main)
        self.assertEqual(watch.wait(30), 0)
        self.assertEqual(driver.wait(30), 0)
        text = seen.decode(errors="replace")
        self.assertGreaterEqual(text.count("\x1b[H\x1b[2J"), 2, text)  # drawn again, whole
        for expect in ("wave 1 (1, 1 node(s)): soaking, ", "wave 2 (100%, 2 node(s)): waiting",
                       "wave 2 (100%, 2 node(s)): promoted", "NODE ", "node1 ", " live  ACK "):
            self.assertIn(expect, text)
        wait_for(lambda: self.state().get("state") == "DONE", what="done")


if __name__ == "__main__":
    unittest.main()
