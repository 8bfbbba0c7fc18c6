"""The node side of the fleet against a real etcd with client certificates (docs/fleet.md):
a target is fetched, applied through the daemon's store and ACKed; an invalid one is NACKed
with the reason while the last good policy keeps serving; a local change is reported as
drift; etcd going away changes nothing the daemon serves, and its return brings the status
back; a node that stops takes its status with it, one that dies loses it with its lease."""
import os
import signal
import unittest

from fleet_harness import Etcd, wait_status
from harness import RemoteTestCase, wait_for
from test_admin import ctl, unix_api


class FleetNodeTest(RemoteTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.etcd = Etcd(cls.root, cls.certs)
        cls.node_cert = cls.certs.leaf("node1", cn="node1.fleet.test", ips=[])

    @classmethod
    def tearDownClass(cls):
        cls.etcd.destroy()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.etcd.ctl("del", "--prefix", "/qtls/")
        if self.etcd.proc is None:
            self.etcd.start()

    def node(self, name="node1", ttl=3):
        return self.start_daemon(args=self.etcd.node_args(name, self.node_cert, ttl))

    def staged(self, name, files):
        d = os.path.join(self.dir, name)
        for path, content in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, path)) or d, exist_ok=True)
            with open(os.path.join(d, path), "w") as f:
                f.write(content)
        return d

    def bundle(self, name, files):
        rc, out, err = self.etcd.fleet("bundle", "--component", "remote",
                                       "--from", self.staged(name, files))
        self.assertEqual(rc, 0, err)
        return out.strip()

    def test_target_ack_nack_and_drift(self):
        d = self.node()
        api = unix_api(d.admin_socket)
        first = api.get()
        st = wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "NO_TARGET",
                         what="first status")
        self.assertEqual(st["applied_digest"], first.digest)
        self.assertEqual(st["applied_generation"], "1")

        good = self.bundle("good", {"tlspolicy": "partner.test verify\n",
                                    "notlshosts/legacy.test": ""})
        self.assertRegex(good, r"^sha256:[0-9a-f]{64}$")
        rc, out, err = self.etcd.fleet("target", "--component", "remote", "--node", "node1",
                                       "--digest", good)
        self.assertEqual(rc, 0, err)
        st = wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK",
                         what="ACK")
        self.assertEqual((st["target_digest"], st["applied_digest"]), (good, good))
        self.assertEqual(api.get().digest, good)
        self.assertIn("caller=fleet:etcd op=apply result=applied generation=1->2",
                      d.read_log())
        with open(os.path.join(self.home.control, "tlspolicy")) as f:
            self.assertEqual(f.read(), "partner.test verify\n")

        # An invalid bundle: NACK with the file, line and reason; the good policy stays.
        bad = self.bundle("bad", {"tlspolicy": "partner.test secure\n"})
        self.etcd.fleet("target", "--component", "remote", "--node", "node1", "--digest", bad)
        st = wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "NACK",
                         what="NACK")
        self.assertIn('tlspolicy line 1: unknown level "secure"', st["error"])
        self.assertEqual(st["applied_digest"], good)
        self.assertEqual(api.get().digest, good)
        rc, out, err = self.etcd.fleet("status", "--component", "remote")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"\nnode1 +NACK +%s +%s +2 no " % (bad[:19], good[:19]))
        self.assertIn("nack: 1, silent: 0, drifted: 0", out)

        # Back to the good target, then a local change: drift, and the change is not undone.
        self.etcd.fleet("target", "--component", "remote", "--node", "node1", "--digest", good)
        wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK", what="ACK 2")
        empty = os.path.join(self.dir, "empty")
        open(empty, "w").close()
        rc, out, err = ctl(d.admin_socket, "policy", "apply", "--put",
                           "notlshosts/local.test=" + empty)
        self.assertEqual(rc, 0, err)
        st = wait_status(self.etcd, "remote", "node1", lambda s: s.get("drift") is True,
                         what="drift")
        self.assertNotEqual(st["applied_digest"], good)
        rc, out, err = self.etcd.fleet("status", "--component", "remote", json_out=True)
        self.assertEqual(rc, 0, err)
        self.assertIn('"drifted":1', out)

    def test_etcd_away_and_back_and_node_leaving(self):
        good = None
        d = self.node(ttl=2)
        wait_status(self.etcd, "remote", "node1", lambda s: True, what="status")
        good = self.bundle("good", {"tlspolicy": "partner.test encrypt\n"})
        self.etcd.fleet("target", "--component", "remote", "--node", "node1", "--digest", good)
        wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK", what="ACK")

        # etcd goes away: the daemon keeps serving the policy it has, and says so.
        self.etcd.stop()
        wait_for(lambda: "fleet: etcd:" in d.read_log() and "retrying in" in d.read_log(),
                 what="the node noticing")
        api = unix_api(d.admin_socket)
        self.assertEqual(api.get().digest, good)
        rc, out, err = ctl(d.admin_socket, "health")
        self.assertEqual((rc, out), (0, "SERVING\n"))
        # etcd comes back (its data kept): the node reconnects and announces itself again.
        self.etcd.start()
        st = wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK",
                         timeout=40, what="status after etcd came back")
        self.assertEqual(st["applied_digest"], good)
        self.assertGreaterEqual(d.read_log().count("fleet: connected to etcd as node node1"), 2)

        # A node that stops revokes its lease: its status goes at once.
        d.stop()
        self.assertEqual(self.etcd.get("/qtls/status/remote/node1"), "")
        # One that dies keeps it until the lease runs out (2 s here).
        d2 = self.node(ttl=2)
        self.daemon = d2
        wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK", what="ACK 3")
        d2.proc.send_signal(signal.SIGKILL)
        d2.proc.wait()
        wait_for(lambda: self.etcd.get("/qtls/status/remote/node1") == "", timeout=15,
                 what="the lease running out")

    def test_node_flags_refused_with_reasons(self):
        with self.assertRaises(AssertionError) as e:
            self.start_daemon(args=["--fleet-etcd", self.etcd.url, "--fleet-ca",
                                    self.certs.ca.cert_path, "--fleet-node", "node1"])
        self.assertIn("--fleet-ca, --fleet-cert and --fleet-key go together", str(e.exception))
        with self.assertRaises(AssertionError) as e:
            self.start_daemon(args=["--fleet-etcd", self.etcd.url, "--fleet-node", "../x"])
        self.assertIn('--fleet-node: "../x" is not a valid host name', str(e.exception))


if __name__ == "__main__":
    unittest.main()
