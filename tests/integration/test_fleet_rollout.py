"""Fleet rollouts with qtlsctl against a real etcd, six real qtls-remoted nodes and, for the
gates, a real Prometheus scraping them (docs/rollouts.md): a clean rollout through
every wave; a NACK that halts it; two rollouts at once; a controller killed mid-wave and
resumed from another process; etcd stopped mid-rollout; a gate that fails on real
deliveries, rolls the wave back, and lets the mail deferred meanwhile leave."""
import re
import signal
import threading
import time
import unittest
import urllib.request

from fleet_harness import NODES, FleetNodesTestCase, Prometheus, wait_status
from harness import run_shim, server_context, wait_for
from test_admin import metrics_pb2, unix_api

ARGV = ("example.test", "a@sender.test", "u@example.test")


class FleetRolloutTest(FleetNodesTestCase):
    def test_clean_rollout_through_every_wave(self):
        self.start_nodes()
        old = self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", new,
                                    "--waves", "1,50%,100%", "--soak", "1s", "--interval", "1s")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"rollout (r\d+-[0-9a-f]{4}): done: wave 3 promoted; every node "
                              r"runs %s" % new)
        for wave, count in ((1, 1), (2, 3), (3, 6)):
            self.assertIn("wave %d (%d node(s)) ACKed" % (wave, count), out)
        self.assertEqual(set(self.applied().values()), {new})
        st = self.state()
        self.assertEqual((st["state"], st["wave"]), ("DONE", 3))
        self.assertEqual(st["previous"], {n: old for n in NODES})
        # No target is provisional once its wave is promoted.
        for n in NODES:
            t = self.etcd.get_json("/qtls/nodes/remote/%s/target" % n)
            self.assertEqual((t["digest"], t.get("provisional", False)), (new, False))
        rc, out, err = self.rollout("status", "--component", "remote")
        self.assertEqual(rc, 0, err)
        self.assertIn("of %s: done" % new, out)
        self.assertEqual(out.count("promoted"), 3)

    def test_report_only_first_writes_candidates_then_rolls(self):
        self.start_nodes(NODES[:2])
        self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        driver, log = self.rollout_bg("start", "--component", "remote", "--digest", new,
                                      "--report-only-first", "3s", "--soak", "1s",
                                      "--interval", "1s")
        # Every node is told the candidate and says so, while it keeps its target.
        for n in self.nodes:
            st = wait_status(self.etcd, "remote", n,
                             lambda s: s.get("candidate_digest") == new,
                             what="candidate on " + n)
            self.assertNotEqual(st["applied_digest"], new)
        self.assertEqual(driver.wait(60), 0)
        log.seek(0)
        self.assertIn("report-only evaluation passed; wave 1 starts", log.read())
        self.assertEqual(self.etcd.get("/qtls/nodes/remote/node1/candidate"), "")
        self.assertEqual(set(self.applied().values()), {new})

    def test_nack_halts_and_rolls_back(self):
        self.start_nodes(NODES[:3])
        old = self.baseline({"tlspolicy": "partner.test may\n"})
        bad = self.bundle("bad", {"tlspolicy": "partner.test sure\n"})
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", bad,
                                    "--waves", "1,100%", "--soak", "1s", "--interval", "1s")
        self.assertEqual(rc, 9, out + err)
        self.assertIn('rolled-back: wave 1: node node1 refused the policy: tlspolicy line 1: '
                      'unknown level "sure"', out)
        # node1 refused it: its target is restored, but it was never changed.
        self.assertIn("0 node(s) given their previous policy back, 1 that never applied it had "
                      "their target restored", out)
        self.assertEqual(set(self.applied().values()), {old})
        wait_status(self.etcd, "remote", "node1",
                    lambda s: s.get("ack") == "ACK" and s["target_digest"] == old,
                    what="node1 back on its old target")
        self.assertEqual(self.etcd.get_json("/qtls/nodes/remote/node2/target")["digest"], old)
        rc, out, err = self.rollout("status", "--component", "remote")
        self.assertEqual(rc, 12, out + err)  # rolled back

    def test_two_at_once_and_one_driver(self):
        self.start_nodes(NODES[:2])
        self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        other = self.bundle("other", {"tlspolicy": "partner.test none\n"})
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", new,
                                    "--soak", "30s", "--interval", "1s", "--detach")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.rollout("start", "--component", "remote", "--digest", other,
                                    "--detach")
        self.assertEqual(rc, 5, err)
        self.assertRegex(err, r"rollout r\d+-[0-9a-f]{4} of remote is rolling; finish or abort "
                              r"it before starting another")
        driver, log = self.rollout_bg("resume", "--component", "remote")
        wait_for(lambda: self.state().get("state") == "SOAKING", what="soaking")
        rc, out, err = self.rollout("status", "--component", "remote")
        self.assertEqual(rc, 10, out + err)  # running
        rc, out, err = self.rollout("resume", "--component", "remote")
        self.assertEqual(rc, 8, err)
        self.assertIn("the remote rollout is being driven by", err)
        # An abort from elsewhere is carried out by the driver.
        rc, out, err = self.rollout("abort", "--component", "remote")
        self.assertEqual(rc, 0, err)
        self.assertIn("aborted: aborted by an operator", out)
        self.assertEqual(driver.wait(30), 9)
        self.assertEqual(self.state()["state"], "ABORTED")
        rc, out, err = self.rollout("status", "--component", "remote")
        self.assertEqual(rc, 13, out + err)  # aborted

    def test_controller_killed_mid_wave_is_resumed_once(self):
        self.start_nodes(NODES[:3])
        self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        driver, log = self.rollout_bg("start", "--component", "remote", "--digest", new,
                                      "--waves", "1,2,100%", "--soak", "4s", "--interval", "1s")
        wait_for(lambda: self.state().get("wave") == 2 and self.state().get("state") == "SOAKING",
                 timeout=60, what="wave 2 soaking")
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # The lock goes with the dead controller's lease (30 s); then another process resumes.
        wait_for(lambda: self.etcd.get("/qtls/locks/rollout/remote") == "", timeout=45,
                 what="the lock lease running out")
        rc, out, err = self.rollout("resume", "--component", "remote")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("done", out)
        history = [e["what"] for e in self.state()["history"]]
        for wave in (1, 2, 3):
            self.assertEqual(sum(1 for h in history if h.startswith("wave %d promoted" % wave)), 1,
                             history)
        self.assertEqual(set(self.applied().values()), {new})
        # The takeover is in the history, and wave 2 soaked again from it: the 30 s nobody
        # drove are no soak time.
        events = self.state()["history"]
        takeover = [e for e in events if e["what"].startswith("taken over by ")]
        self.assertEqual(len(takeover), 1, history)
        self.assertIn("; wave 2 soaks again", takeover[0]["what"])
        promoted = [e for e in events if e["what"].startswith("wave 2 promoted")][0]
        self.assertGreaterEqual(promoted["time"] - takeover[0]["time"], 4 - 0.1)

    def dead_canary(self, on_node_loss):
        """Wave 1 (node1) soaks; node1 is killed 2 s into the soak and left down."""
        self.start_nodes(NODES[:3])
        prom = Prometheus(self.dir, {n: d.metrics_address() for n, d in self.nodes.items()})
        self.addCleanup(prom.stop)
        wait_for(lambda: len(prom.query('up{qtls_node=~"node.*"} == 1')) == 3, timeout=60,
                 what="Prometheus scraping the three nodes")
        old = self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        args = ["start", "--component", "remote", "--digest", new, "--waves", "1,100%",
                "--soak", "10s", "--interval", "1s", "--prometheus", prom.url]
        if on_node_loss:
            args += ["--on-node-loss", on_node_loss]
        driver, log = self.rollout_bg(*args)
        wait_for(lambda: self.state().get("state") == "SOAKING", timeout=60, what="soaking")
        time.sleep(2)  # the canary has soaked a while, and its samples are in the rate window
        self.nodes["node1"].proc.send_signal(signal.SIGKILL)
        self.nodes["node1"].proc.wait()
        self.assertEqual(driver.wait(90), 9, open(log.name).read())
        st = self.state()
        self.assertRegex(st["reason"], r"^wave 1: node\(s\) lost during the soak: node1 \((no "
                                       r"live status lease|not scraped by Prometheus since the "
                                       r"soak began)\)")
        self.assertNotIn("promoted", " ".join(e["what"] for e in st["history"]))
        for n in ("node2", "node3"):  # wave 2 never started
            self.assertEqual(self.etcd.get_json("/qtls/nodes/remote/%s/target" % n)["digest"], old)
        return st, old

    def test_dead_canary_pauses_its_wave(self):
        st, _ = self.dead_canary(None)
        self.assertEqual(st["state"], "PAUSED")
        self.assertIn("`qtlsctl rollout resume` soaks the wave again and asks its gates, "
                      "`qtlsctl rollout promote` promotes it without them, `qtlsctl rollout "
                      "abort` rolls it back", st["reason"])
        rc, out, err = self.rollout("status", "--component", "remote")
        self.assertEqual(rc, 11, out + err)  # paused

    def test_dead_canary_rolls_back_with_on_node_loss_rollback(self):
        st, old = self.dead_canary("rollback")
        self.assertEqual(st["state"], "ROLLED_BACK")
        # node1 is down: its target is its old one again, for when it comes back.
        self.assertEqual(self.etcd.get_json("/qtls/nodes/remote/node1/target")["digest"], old)

    def test_etcd_stopped_mid_rollout(self):
        self.start_nodes(NODES[:2])
        old = self.baseline({"tlspolicy": "partner.test may\n"})
        new = self.bundle("new", {"tlspolicy": "partner.test encrypt\n"})
        driver, log = self.rollout_bg("start", "--component", "remote", "--digest", new,
                                      "--waves", "1,100%", "--soak", "3s", "--interval", "1s")
        wait_for(lambda: self.state().get("state") == "SOAKING", what="soaking")
        self.etcd.stop()
        # Both nodes and the driver have seen etcd go, and carry on without it.
        wait_for(lambda: all("serving generation" in d.read_log() for d in self.nodes.values()),
                 timeout=30, what="each node serving on without etcd")

        def driver_says(text):
            log.flush()
            with open(log.name) as f:
                return text in f.read()
        wait_for(lambda: driver_says("the rollout waits"), timeout=30, what="the driver waiting")
        # The nodes keep what they had: node1 the new policy, node2 the old one.
        self.assertEqual(self.applied(), {"node1": new, "node2": old})
        self.etcd.start()
        rc = driver.wait(90)
        log.seek(0)
        out = log.read()
        self.assertEqual(rc, 0, out)
        self.assertIn("the rollout waits", out)
        self.assertEqual(self.state()["state"], "DONE")
        self.assertEqual(set(self.applied().values()), {new})

    def test_failed_gate_rolls_back_and_deferred_mail_leaves(self):
        # The sink's certificate names another host: "encrypt" delivers, "verify" cannot.
        wrong = self.certs.leaf("sink-wrong-name", dns=["wrong.test"], ips=[])
        sink = self.peer(server_ctx=server_context(wrong), starttls=True)
        self.start_nodes(NODES[:4], route_to=sink)
        prom = Prometheus(self.dir, {n: d.metrics_address() for n, d in self.nodes.items()})
        self.addCleanup(prom.stop)
        old = self.baseline({"tlspolicy": "example.test encrypt\n"})
        new = self.bundle("new", {"tlspolicy": "example.test verify ca=%s\n"
                                               % self.certs.ca.cert_path})
        driver, log = self.rollout_bg(
            "start", "--component", "remote", "--digest", new, "--waves", "1,100%",
            "--soak", "20s", "--interval", "2s", "--prometheus", prom.url,
            "--gate", "tls_failures", "--count", "3", "--failure-limit", "2")
        wait_for(lambda: self.state().get("state") == "SOAKING", timeout=60, what="soaking")
        # Mail through every node while wave 1 (node1) soaks: node1 defers, the rest deliver.
        deferred = []
        for _ in range(6):
            for n, d in self.nodes.items():
                out, _, _ = run_shim(d.socket, self.homes[n], ARGV)
                if n == "node1":
                    self.assertTrue(out.startswith(b"Z"), out)
                    deferred.append(n)
                else:
                    self.assertTrue(out.startswith(b"r\0K"), out)
            time.sleep(1)
        self.assertEqual(driver.wait(90), 9)
        st = self.state()
        self.assertEqual(st["state"], "ROLLED_BACK")
        self.assertRegex(st["reason"], r"wave 1: gate tls_failures failed: [0-9.e-]+ > 0\.02;")
        wait_status(self.etcd, "remote", "node1",
                    lambda s: s.get("ack") == "ACK" and s["applied_digest"] == old,
                    what="node1 back on the old policy")
        self.assertIn("; 1 node(s) given their previous policy back", st["reason"])
        # On the node the rollback is an audit line of its own, with the rollout and why.
        audit = [l for l in self.nodes["node1"].read_log().splitlines()
                 if "audit " in l and " op=rollback " in l]
        self.assertEqual(len(audit), 1, self.nodes["node1"].read_log())
        self.assertRegex(audit[0], r"caller=fleet:%s .*result=applied .*reason=\"?rollout %s "
                                   r"wave 1: wave 1: gate tls_failures failed"
                         % (st["id"], st["id"]))
        delivered_before = len(sink.messages)
        # qmail retries what was deferred: now it leaves, once each.
        for _ in deferred:
            out, _, _ = run_shim(self.nodes["node1"].socket, self.homes["node1"], ARGV)
            self.assertTrue(out.startswith(b"r\0K"), out)
        self.assertEqual(len(sink.messages), delivered_before + len(deferred))

    def test_report_only_counts_would_fail_by_reason_and_stops_before_wave_1(self):
        # node1's sink offers STARTTLS with a certificate for another name; node2's offers no
        # STARTTLS. Under "may" both deliver; the candidate "verify" would refuse both.
        wrong = self.certs.leaf("sink-wrong-name", dns=["wrong.test"], ips=[])
        tls_sink = self.peer(server_ctx=server_context(wrong), starttls=True)
        plain_sink = self.peer()
        self.start_nodes(NODES[:2], route_to={"node1": tls_sink, "node2": plain_sink})
        prom = Prometheus(self.dir, {n: d.metrics_address() for n, d in self.nodes.items()})
        self.addCleanup(prom.stop)
        old = self.baseline({"tlspolicy": "example.test may\n"})
        new = self.bundle("new", {"tlspolicy": "example.test verify ca=%s\n"
                                               % self.certs.ca.cert_path})
        driver, log = self.rollout_bg(
            "start", "--component", "remote", "--digest", new, "--waves", "1,100%",
            "--soak", "1s", "--report-only-first", "60s", "--interval", "2s",
            "--prometheus", prom.url, "--count", "3", "--failure-limit", "2")
        for n in self.nodes:
            st = wait_status(self.etcd, "remote", n, lambda s: s.get("candidate_digest") == new,
                             what="candidate on " + n)
            self.assertEqual(st.get("candidate_error", ""), "")
        # The session stream carries the candidate's verdict with each delivery.
        api = unix_api(self.nodes["node1"].admin_socket)
        call = api.metrics.WatchSessions(metrics_pb2.WatchSessionsRequest(
            direction=metrics_pb2.WatchSessionsRequest.DIRECTION_OUTBOUND))
        call.initial_metadata()
        records = []
        reader = threading.Thread(target=lambda: records.append(next(call)), daemon=True)
        reader.start()
        sent = 0
        while driver.poll() is None and sent < 30:
            for n, d in self.nodes.items():
                out, _, _ = run_shim(d.socket, self.homes[n], ARGV)
                self.assertTrue(out.startswith(b"r\0K"), out)  # the policy in force rules
            sent += 1
            time.sleep(1)
        self.assertEqual(driver.wait(90), 9)
        reader.join(5)
        call.cancel()
        self.assertEqual((records[0].candidate_digest, records[0].candidate_verdict),
                         (new, "certificate-host-mismatch"))
        self.assertEqual(records[0].outcome, "K")
        st = self.state()
        self.assertEqual(st["state"], "ROLLED_BACK")
        self.assertRegex(st["reason"], r"^report-only: gate would_fail failed: 1 > 0\.02; 0 node\(s\) given")
        # Nothing was ever applied or targeted; the candidates are gone.
        self.assertEqual(set(self.applied().values()), {old})
        for n in self.nodes:
            self.assertEqual(self.etcd.get_json("/qtls/nodes/remote/%s/target" % n)["digest"], old)
            self.assertEqual(self.etcd.get("/qtls/nodes/remote/%s/candidate" % n), "")
            wait_status(self.etcd, "remote", n, lambda s: not s.get("candidate_digest"),
                        what="candidate withdrawn on " + n)
        # Counted by reason, each delivery once, in /metrics and on each delivery line.
        expect = {"node1": "certificate-host-mismatch", "node2": "starttls-not-supported"}
        for n, d in self.nodes.items():
            with urllib.request.urlopen("http://%s/metrics" % d.metrics_address()) as r:
                text = r.read().decode()
            counts = {m.group(1): float(m.group(2)) for m in re.finditer(
                r'^qtls_candidate_verdicts_total\{component="remote",result="([a-z-]+)"\} (\S+)$',
                text, re.M)}
            self.assertEqual(counts[expect[n]], sent, n)
            self.assertEqual(sum(counts.values()), sent, (n, counts))
            self.assertEqual(d.read_log().count("candidate=" + expect[n]), sent, n)
        # Withdrawn: the next delivery is judged against nothing.
        out, _, _ = run_shim(self.nodes["node1"].socket, self.homes["node1"], ARGV)
        self.assertTrue(out.startswith(b"r\0K"), out)
        wait_for(lambda: self.nodes["node1"].read_log().count("status=K") == sent + 1,
                 what="the last delivery line")
        self.assertNotIn("candidate=", self.nodes["node1"].read_log().splitlines()[-1])


if __name__ == "__main__":
    unittest.main()
