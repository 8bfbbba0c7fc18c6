"""Prometheus metrics of both daemons: the exposition passes promtool, and a real Prometheus
server scraping both on loopback returns the expected series after an outbound TLS delivery and
an inbound STARTTLS session."""
import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request

from harness import RemoteTestCase, free_port, server_context, wait_for
from smtpd_harness import Agent


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


class MetricsTest(RemoteTestCase):
    def setUp(self):
        super().setUp()
        self.good = self.certs.leaf("mx", dns=["mx.test"], ips=["127.0.0.2"])
        # Outbound: one TLS delivery through the daemon.
        p = self.peer(server_ctx=server_context(self.good), starttls=True)
        self.route("example.test", p)
        self.start_daemon()
        out = self.deliver(("example.test", "a@b.test", "u@example.test"))
        self.assertTrue(out.startswith(b"r\0K"), out)
        # Inbound: one STARTTLS session through the agent.
        self.home.write("rcpthosts", "agent.test\n")
        with open(self.good.pem_path) as f:
            self.home.write("servercert.pem", f.read(), 0o600)
        qdir = os.path.join(self.dir, "queue")
        os.makedirs(qdir)
        self.agent = Agent(self.home, self.dir, qdir, tls_port=False)
        self.addCleanup(self.agent.stop)
        rc = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.agent.port, "--tls",
                             "--from", "a@b.test", "--to", "u@agent.test"],
                            capture_output=True, timeout=60).returncode
        self.assertEqual(rc, 0)
        self.remote_metrics = self.daemon.metrics_address()
        self.agent_metrics = self.agent_address()

    def agent_address(self):
        from harness import metrics_address
        wait_for(lambda: metrics_address(self.agent.read_log()), what="agent metrics address")
        return metrics_address(self.agent.read_log())

    def test_rules_and_dashboard_query_only_exported_metrics(self):
        """Every qtls_* metric the shipped rules, alerts and dashboard read is one the daemons
        export (a renamed metric would leave a silent alert or an empty panel)."""
        exported = set()
        for addr in (self.remote_metrics, self.agent_metrics):
            exported.update(re.findall(r"^# TYPE (\S+) ", fetch("http://%s/metrics" % addr), re.M))
        deploy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy")
        used = {}
        for path in ("prometheus/qtls-rules.yml", "prometheus/qtls-alerts.yml",
                     "grafana/qtls-dashboard.json"):
            with open(os.path.join(deploy, path)) as f:
                for name in re.findall(r"\b(qtls_[a-z0-9_]+)", f.read()):
                    used.setdefault(name, path)
        self.assertGreater(len(used), 10)
        missing = {n: p for n, p in used.items() if n not in exported}
        self.assertEqual(missing, {})

    def test_promtool_accepts_both(self):
        for addr in (self.remote_metrics, self.agent_metrics):
            text = fetch("http://%s/metrics" % addr)
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        remote = fetch("http://%s/metrics" % self.remote_metrics)
        self.assertIn('qtls_remote_deliveries_total{result="success",frontend="shim"} 1', remote)
        self.assertIn('qtls_remote_tls_handshakes_total{level="may",result="ok",version="TLSv1.3"} 1',
                      remote)
        agent = fetch("http://%s/metrics" % self.agent_metrics)
        wait_for(lambda: 'qtls_agent_sessions_total{tls_mode="starttls"} 1' in
                 fetch("http://%s/metrics" % self.agent_metrics), what="session counted")
        self.assertIn('qtls_agent_messages_total{result="accepted"} 1', agent)
        self.assertIn('qtls_agent_starttls_total{result="ok"} 1', agent)
        self.assertRegex(agent, r'qtls_tls_cert_expiry_timestamp_seconds\{cert="servercert"\} \d+')
        # Known label sets are there at zero; a certificate that does not exist has no series
        # (a -1 would fire every "expires soon" alert); bucket bounds print canonically.
        self.assertIn('qtls_remote_deliveries_total{result="permanent",frontend="shim"} 0', remote)
        self.assertIn('qtls_agent_limit_closes_total{reason="evicted"} 0', agent)
        self.assertIn('qtls_policy_updates_total{op="rollback",result="refused"} 0', remote)
        self.assertNotIn('cert="clientcert"', remote)
        self.assertNotIn('cert="tlshosts_ca"', remote)
        self.assertIn('le="0.1"', remote)
        self.assertNotIn("0.10000000000000001", remote)

    def test_a_taken_metrics_address_refuses_start(self):
        # Without SO_REUSEPORT a second daemon cannot share the port and split the scrapes.
        for daemon, held in (("qtls-remoted", self.remote_metrics),
                             ("qtls-smtpd", self.agent_metrics)):
            with self.subTest(daemon=daemon):
                with self.assertRaises(AssertionError) as e:
                    if daemon == "qtls-remoted":
                        from harness import Remoted
                        other = os.path.join(self.dir, "second")
                        os.makedirs(other, exist_ok=True)
                        Remoted(self.home, other, args=["--metrics-listen", held])
                    else:
                        Agent(self.home, os.path.join(self.dir), os.path.join(self.dir, "queue"),
                              args=["--metrics-listen", held], tls_port=False)
                self.assertIn("fatal: metrics listener %s: cannot bind" % held, str(e.exception))

    def test_prometheus_scrapes_both(self):
        port = free_port("127.0.0.1")
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                    "  - job_name: qtls-remoted\n    static_configs:\n      - targets: ['%s']\n"
                    "  - job_name: qtls-smtpd\n    static_configs:\n      - targets: ['%s']\n"
                    % (self.remote_metrics, self.agent_metrics))
        log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        proc = subprocess.Popen(["prometheus", "--config.file", cfg, "--storage.tsdb.path",
                                 os.path.join(self.dir, "tsdb"), "--web.listen-address",
                                 "127.0.0.1:%d" % port], stdout=log, stderr=log)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(), log.close()))

        def query(q):
            try:
                body = fetch("http://127.0.0.1:%d/api/v1/query?query=%s"
                             % (port, urllib.parse.quote(q)))
            except OSError:
                return []
            return json.loads(body)["data"]["result"]

        want = {
            'qtls_remote_deliveries_total{result="success",frontend="shim"}': "1",
            'qtls_agent_messages_total{result="accepted"}': "1",
            'qtls_agent_sessions_total{tls_mode="starttls"}': "1",
            'up{job="qtls-remoted"}': "1",
            'up{job="qtls-smtpd"}': "1",
        }
        for q, value in want.items():
            wait_for(lambda: [r["value"][1] for r in query(q)] == [value], timeout=40,
                     what="prometheus series " + q)
