"""The fleet's test peers: a real etcd (Debian's etcd-server) on loopback with TLS and client
certificates, etcdctl against it, and qtlsctl's fleet commands."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import BUILD, QmailHome, Remoted, RemoteTestCase, free_port, wait_for
from test_admin import unix_api

QTLSCTL = os.path.join(BUILD, "services", "ctl", "qtlsctl")


class Etcd:
    """One etcd member: https on a free port, client certificates required."""

    def __init__(self, root, pki, name="qtls-test", cluster=None, wait=True):
        """One member; `cluster` ({name: (client_port, peer_port)}) makes it one of several."""
        self.dir = tempfile.mkdtemp(dir=root, prefix="etcd-")
        self.pki = pki
        self.name = name
        self.server = pki.leaf("etcd-server", dns=["localhost"], ips=["127.0.0.1"])
        self.admin = pki.leaf("etcd-admin", cn="qtls-admin", ips=[])
        self.cluster = cluster or {name: (free_port(), free_port())}
        self.port, self.peer_port = self.cluster[name]
        self.url = "https://127.0.0.1:%d" % self.port
        self.proc = None
        self.start(wait)

    def start(self, wait=True):
        peer = "http://127.0.0.1:%d" % self.peer_port
        initial = ",".join("%s=http://127.0.0.1:%d" % (n, p[1]) for n, p in self.cluster.items())
        cmd = ["etcd", "--name", self.name, "--data-dir", os.path.join(self.dir, "data"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", initial,
               "--client-cert-auth", "--trusted-ca-file", self.pki.ca.cert_path,
               "--cert-file", self.server.cert_path, "--key-file", self.server.key_path,
               "--logger", "zap", "--log-level", "error"]
        self.log = open(os.path.join(self.dir, "etcd.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        if wait:
            self.wait_healthy()

    def wait_healthy(self):
        wait_for(lambda: self.healthy() or self.proc.poll() is not None, timeout=30,
                 what="etcd")
        if self.proc.poll() is not None:
            raise AssertionError("etcd exited: " + open(os.path.join(self.dir, "etcd.log")).read())

    def healthy(self):
        p = self.ctl("endpoint", "health", check=False)
        return p.returncode == 0

    def ctl(self, *args, check=True):
        p = subprocess.run(["etcdctl", "--endpoints", self.url, "--cacert", self.pki.ca.cert_path,
                            "--cert", self.admin.cert_path, "--key", self.admin.key_path,
                            "--dial-timeout", "2s", "--command-timeout", "5s"] + list(args),
                           capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, ETCDCTL_API="3"))
        if check and p.returncode != 0:
            raise AssertionError("etcdctl %s: %s" % (" ".join(args), p.stderr))
        return p

    def get(self, key):
        p = self.ctl("get", key, "--print-value-only")
        return p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout

    def get_json(self, key):
        v = self.get(key)
        return json.loads(v) if v else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def node_args(self, node, client, ttl=3):
        """The daemon flags for a node with its own client certificate."""
        return ["--fleet-etcd", self.url, "--fleet-ca", self.pki.ca.cert_path,
                "--fleet-cert", client.cert_path, "--fleet-key", client.key_path,
                "--fleet-node", node, "--fleet-lease-ttl", str(ttl)]

    def fleet(self, *args, json_out=False, timeout=60):
        """`qtlsctl fleet ARGS` against this etcd as the admin; (rc, stdout, stderr)."""
        cmd = [QTLSCTL] + (["--json"] if json_out else []) + [
            "fleet", "--etcd", self.url, "--etcd-ca", self.pki.ca.cert_path,
            "--etcd-cert", self.admin.cert_path, "--etcd-key", self.admin.key_path] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr


class EtcdTestCase(RemoteTestCase):
    """One etcd for the class (restarted if a test stopped it), emptied before each test, and
    policies stored as bundles from a dict of files."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.etcd = Etcd(cls.root, cls.certs)

    @classmethod
    def tearDownClass(cls):
        cls.etcd.destroy()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.etcd.proc is None:
            self.etcd.start()
        self.etcd.ctl("del", "--prefix", "/qtls/")

    def bundle(self, name, files, component="remote"):
        """Writes `files` ({path: content}) in control/ layout and stores them; the digest."""
        d = os.path.join(self.dir, "bundle-" + name)
        for path, content in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, path)) or d, exist_ok=True)
            with open(os.path.join(d, path), "w") as f:
                f.write(content)
        rc, out, err = self.etcd.fleet("bundle", "--component", component, "--from", d)
        if rc != 0:
            raise AssertionError("fleet bundle: " + err)
        return out.strip()


def wait_status(etcd, component, node, pred, timeout=20, what="status"):
    """Waits until the node's status value satisfies pred; returns it."""
    key = "/qtls/status/%s/%s" % (component, node)
    found = {}

    def check():
        st = etcd.get_json(key)
        found["v"] = st
        return st is not None and pred(st)
    try:
        wait_for(check, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError("%s: last status %r" % (what, found.get("v")))
    return found["v"]


def now():
    return time.time()


class Prometheus:
    """A real Prometheus scraping each node's /metrics every second, with the label
    qtls_node set to the node's fleet name (as docs/fleet.md and docs/rollouts.md ask of a real one)."""

    def __init__(self, root, targets):
        self.dir = tempfile.mkdtemp(dir=root, prefix="prom-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: qtls\n    static_configs:\n")
            for node, addr in targets.items():
                f.write("      - targets: ['%s']\n        labels: {qtls_node: '%s'}\n"
                        % (addr, node))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file", cfg, "--storage.tsdb.path",
             os.path.join(self.dir, "tsdb"), "--web.listen-address", "127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=self.log)

    def query(self, q):
        import urllib.parse
        import urllib.request
        try:
            with urllib.request.urlopen("%s/api/v1/query?query=%s"
                                        % (self.url, urllib.parse.quote(q)), timeout=5) as r:
                return json.loads(r.read())["data"]["result"]
        except OSError:
            return []

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


NODES = ["node%d" % i for i in range(1, 7)]


class FleetNodesTestCase(EtcdTestCase):
    """Real qtls-remoted nodes following this etcd, each with its own client certificate, and
    qtlsctl rollout against them."""
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.node_certs = {n: cls.certs.leaf(n, cn=n + ".fleet.test", ips=[]) for n in NODES}

    def setUp(self):
        super().setUp()
        self.nodes = {}
        self.homes = {}

    def tearDown(self):
        # Every node stops, even when one of them has a sanitizer report to raise.
        errors = []
        for d in self.nodes.values():
            try:
                d.stop()
            except AssertionError as e:
                errors.append(e)
        super().tearDown()
        if errors:
            raise errors[0]

    def start_nodes(self, names=NODES, route_to=None):
        """`route_to`: the sink for example.test, or {node: sink}."""
        for n in names:
            root = os.path.join(self.dir, n)
            os.makedirs(root)
            home = QmailHome(root)
            sink = route_to.get(n) if isinstance(route_to, dict) else route_to
            if sink:
                home.write("smtproutes", "example.test:%s:%d\n" % (sink.host, sink.port))
            self.homes[n] = home
            self.nodes[n] = Remoted(home, root, args=self.etcd.node_args(n, self.node_certs[n]))
        for n in names:
            wait_status(self.etcd, "remote", n, lambda s: True, what="status of " + n)

    def baseline(self, files):
        """Every node on one policy through a target: the state a rollout starts from."""
        digest = self.bundle("baseline", files)
        for n in self.nodes:
            rc, _, err = self.etcd.fleet("target", "--component", "remote", "--node", n,
                                         "--digest", digest)
            self.assertEqual(rc, 0, err)
        for n in self.nodes:
            wait_status(self.etcd, "remote", n,
                        lambda s: s.get("ack") == "ACK" and s["applied_digest"] == digest,
                        what="baseline on " + n)
        return digest

    def rollout(self, *args, timeout=120):
        cmd = [QTLSCTL, "rollout", "--etcd", self.etcd.url, "--etcd-ca", self.certs.ca.cert_path,
               "--etcd-cert", self.etcd.admin.cert_path, "--etcd-key",
               self.etcd.admin.key_path] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def rollout_bg(self, *args):
        cmd = [QTLSCTL, "rollout", "--etcd", self.etcd.url, "--etcd-ca", self.certs.ca.cert_path,
               "--etcd-cert", self.etcd.admin.cert_path, "--etcd-key",
               self.etcd.admin.key_path] + list(args)
        log = open(os.path.join(self.dir, "controller-%d.log" % time.time_ns()), "w+")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), log.close()))
        return p, log

    def state(self):
        return self.etcd.get_json("/qtls/rollouts/remote") or {}

    def applied(self):
        return {n: unix_api(d.admin_socket).get().digest for n, d in self.nodes.items()}
