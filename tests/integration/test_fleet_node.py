"""The node side of the fleet against a real etcd with client certificates (docs/fleet.md):
a target is fetched, applied through the daemon's store and ACKed; an invalid one is NACKed
with the reason while the last good policy keeps serving; a local change is reported as
drift; etcd going away changes nothing the daemon serves, and its return brings the status
back; a node that stops takes its status with it, one that dies loses it with its lease; the
inbound agent judges a report-only candidate against each session."""
import json
import os
import re
import signal
import subprocess
import unittest
import urllib.request

from fleet_harness import Etcd, EtcdTestCase, wait_status
from harness import RemoteTestCase, certs, metrics_address, wait_for
from smtpd_harness import Agent, Client, client_context
from test_admin import ctl, unix_api


class FleetNodeTest(EtcdTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.node_cert = cls.certs.leaf("node1", cn="node1.fleet.test", ips=[])

    def node(self, name="node1", ttl=3):
        return self.start_daemon(args=self.etcd.node_args(name, self.node_cert, ttl))

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
        # etcd keeps leases across a restart, so the status key may still be the one written
        # before the outage: wait for the reconnection itself, then for the status.
        self.etcd.start()
        wait_for(lambda: d.read_log().count("fleet: connected to etcd as node node1") >= 2,
                 timeout=40, what="the node reconnecting")
        st = wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK",
                         timeout=40, what="status after etcd came back")
        self.assertEqual(st["applied_digest"], good)

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


def read(path):
    with open(path) as f:
        return f.read()


class SmtpdReportOnlyTest(EtcdTestCase):
    """qtls-smtpd as a fleet node relaying for a client certificate: candidates that would
    stop that relaying, or stop offering TLS, are counted by reason; the policy in force keeps
    deciding."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.certs
        cls.node_cert = c.leaf("mx1", cn="mx1.fleet.test", ips=[])
        cls.server = c.leaf("agent", dns=["agent.test"], ips=["127.0.0.1"])
        cls.client = c.leaf("client", cn="client", email="relay@client.test", ips=[])
        os.makedirs(os.path.join(cls.root, "foreign"))
        cls.foreign = certs.CertFactory(os.path.join(cls.root, "foreign"), ca_name="foreign CA")

    def setUp(self):
        super().setUp()
        self.home.write("me", "mx.agent.test\n")
        self.policy = {"rcpthosts": "agent.test\n",
                       "servercert.pem": read(self.server.pem_path),
                       "clientca.pem": read(self.certs.ca.cert_path),
                       "tlsclients": "relay@client.test\n"}
        for path, content in self.policy.items():
            self.home.write(path, content, 0o600)
        self.qdir = os.path.join(self.dir, "queue")
        os.makedirs(self.qdir)
        os.chmod(self.qdir, 0o777)
        self.agent = Agent(self.home, self.dir, self.qdir,
                           args=self.etcd.node_args("mx1", self.node_cert), tls_port=False)
        self.addCleanup(self.agent.stop)
        wait_status(self.etcd, "smtpd", "mx1", lambda s: s.get("ack") == "NO_TARGET",
                    what="first status")

    def candidate(self, files):
        digest = self.bundle("cand-%d" % len(os.listdir(self.dir)), files, component="smtpd")
        self.etcd.ctl("put", "/qtls/nodes/smtpd/mx1/candidate",
                      json.dumps({"digest": digest, "rollout": "r-test"}))
        st = wait_status(self.etcd, "smtpd", "mx1", lambda s: s.get("candidate_digest") == digest,
                         what="candidate " + digest)
        self.assertEqual(st.get("candidate_error", ""), "")
        return digest

    def session(self, tls):
        """One session; with TLS it relays by the client certificate. The last log line."""
        before = self.agent.read_log().count("session client=")
        c = Client(self.agent.port)
        try:
            c.reply()
            c.cmd("EHLO x")
            if tls:
                self.assertTrue(c.cmd("STARTTLS").startswith("220"))
                c.starttls(client_context(self.certs.ca.cert_path, cert=self.client))
                c.cmd("EHLO x")
            c.cmd("MAIL FROM:<a@b.test>")
            r = c.cmd("RCPT TO:<u@elsewhere.test>" if tls else "RCPT TO:<u@agent.test>")
            self.assertTrue(r.startswith("250"), r)  # the policy in force decides
            c.cmd("QUIT")
        finally:
            c.close()
        wait_for(lambda: self.agent.read_log().count("session client=") > before,
                 what="the session line")
        return [l for l in self.agent.read_log().splitlines() if "session client=" in l][-1]

    def counts(self):
        with urllib.request.urlopen(
                "http://%s/metrics" % metrics_address(self.agent.read_log())) as r:
            text = r.read().decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(
            r'^qtls_candidate_verdicts_total\{component="smtpd",result="([a-z-]+)"\} (\S+)$',
            text, re.M)}

    def test_candidates_judged_against_each_session(self):
        self.assertNotIn("candidate=", self.session(tls=True))  # none yet
        # Trust moved to another CA: this client would relay no more.
        self.candidate(dict(self.policy, **{"clientca.pem": read(self.foreign.ca.cert_path)}))
        line = self.session(tls=True)
        self.assertIn(" relay=cert ", line)  # relayed all the same
        self.assertIn(" candidate=certificate-not-trusted ", line)
        self.assertIn(" candidate=pass ", self.session(tls=False))
        # The client's address dropped from tlsclients.
        self.candidate(dict(self.policy, tlsclients="someone@else.test\n"))
        self.assertIn(" candidate=validation-failure ", self.session(tls=True))
        # No server certificate: STARTTLS would not be offered.
        self.candidate({"rcpthosts": "agent.test\n", "tlsclients": "relay@client.test\n"})
        self.assertIn(" candidate=downgrade ", self.session(tls=True))
        counts = self.counts()
        self.assertEqual({k: v for k, v in counts.items() if v},
                         {"certificate-not-trusted": 1, "pass": 1, "validation-failure": 1,
                          "downgrade": 1})
        # Withdrawn.
        self.etcd.ctl("del", "/qtls/nodes/smtpd/mx1/candidate")
        wait_status(self.etcd, "smtpd", "mx1", lambda s: not s.get("candidate_digest"),
                    what="candidate withdrawn")
        self.assertNotIn("candidate=", self.session(tls=True))
        self.assertEqual(self.counts(), counts)


class FleetRolesTest(RemoteTestCase):
    """etcd with authentication on: each node's certificate CN is an etcd user whose role
    reads its own keys and the bundles and writes only its own status (docs/fleet.md)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.etcd = Etcd(cls.root, cls.certs)
        e = cls.etcd
        cls.node_cert = cls.certs.leaf("role-node1", cn="node1", ips=[])
        e.ctl("user", "add", "root", "--new-user-password", "not-used-with-certs")
        e.ctl("user", "grant-role", "root", "root")
        e.ctl("user", "add", "qtls-admin", "--no-password")
        e.ctl("user", "grant-role", "qtls-admin", "root")
        for node in ("node1", "node2"):
            role = "qtls-node-" + node
            e.ctl("role", "add", role)
            e.ctl("role", "grant-permission", role, "read", "/qtls/nodes/remote/%s/" % node,
                  "--prefix=true")
            e.ctl("role", "grant-permission", role, "read", "/qtls/bundles/remote/",
                  "--prefix=true")
            e.ctl("role", "grant-permission", role, "readwrite", "/qtls/status/remote/" + node)
            e.ctl("user", "add", node, "--no-password")
            e.ctl("user", "grant-role", node, role)
        e.ctl("auth", "enable")

    @classmethod
    def tearDownClass(cls):
        cls.etcd.destroy()
        super().tearDownClass()

    def test_a_node_reads_its_keys_and_writes_only_its_status(self):
        d = self.start_daemon(args=self.etcd.node_args("node1", self.node_cert, 3))
        staged = os.path.join(self.dir, "p")
        os.makedirs(staged)
        with open(os.path.join(staged, "tlspolicy"), "w") as f:
            f.write("partner.test verify\n")
        rc, out, err = self.etcd.fleet("bundle", "--component", "remote", "--from", staged)
        self.assertEqual(rc, 0, err)
        digest = out.strip()
        rc, out, err = self.etcd.fleet("target", "--component", "remote", "--node", "node1",
                                       "--digest", digest)
        self.assertEqual(rc, 0, err)
        wait_status(self.etcd, "remote", "node1", lambda s: s.get("ack") == "ACK", what="ACK")
        self.assertEqual(unix_api(d.admin_socket).get().digest, digest)

        def as_node(*args):
            return subprocess.run(
                ["etcdctl", "--endpoints", self.etcd.url, "--cacert", self.certs.ca.cert_path,
                 "--cert", self.node_cert.cert_path, "--key", self.node_cert.key_path] +
                list(args), capture_output=True, text=True, timeout=20,
                env=dict(os.environ, ETCDCTL_API="3"))
        for args in (("put", "/qtls/status/remote/node2", "{}"),
                     ("put", "/qtls/nodes/remote/node1/target", "{}"),
                     ("put", "/qtls/bundles/remote/" + digest, "{}"),
                     ("get", "/qtls/nodes/remote/node2/target")):
            p = as_node(*args)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn("permission denied", p.stderr, args)


class FleetHaTest(RemoteTestCase):
    """Three etcd members; the node is given all three and keeps following its target when
    the member it talks to stops."""

    def test_three_members_one_stops(self):
        from harness import free_port
        cluster = {"m%d" % i: (free_port(), free_port()) for i in (1, 2, 3)}
        members = [Etcd(self.root, self.certs, name=n, cluster=cluster, wait=False)
                   for n in cluster]
        for m in members:
            self.addCleanup(m.destroy)
        for m in members:
            m.wait_healthy()
        cert = self.certs.leaf("ha-node", cn="ha-node", ips=[])
        args = members[0].node_args("node1", cert, 3)
        args[args.index("--fleet-etcd") + 1] = ",".join(m.url for m in members)
        d = self.start_daemon(args=args)
        wait_status(members[1], "remote", "node1", lambda s: True, what="status")
        staged = os.path.join(self.dir, "p")
        os.makedirs(staged)
        for level in ("may", "encrypt"):
            with open(os.path.join(staged, "tlspolicy"), "w") as f:
                f.write("partner.test %s\n" % level)
            rc, out, err = members[1].fleet("bundle", "--component", "remote", "--from", staged)
            self.assertEqual(rc, 0, err)
            digest = out.strip()
            rc, out, err = members[1].fleet("target", "--component", "remote", "--node",
                                            "node1", "--digest", digest)
            self.assertEqual(rc, 0, err)
            wait_status(members[2], "remote", "node1",
                        lambda s: s.get("ack") == "ACK" and s["applied_digest"] == digest,
                        timeout=30, what="ACK of %s" % level)
            self.assertEqual(unix_api(d.admin_socket).get().digest, digest)
            members[0].stop()  # the first endpoint, the one the node started with


if __name__ == "__main__":
    unittest.main()
