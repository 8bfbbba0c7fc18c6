"""The admin API on TCP: mutual TLS done by the daemon's own TLS front, the identity
allow-list with read and write rights, every refusal logged with the peer's address and
audited, and qtlsctl over it (docs/admin-api.md, "Where it listens, and who may call")."""
import os
import re
import subprocess
import unittest

from harness import RemoteTestCase, certs, wait_for
from test_admin import (QTLSCTL, Api, code_of, grpc, health_pb2, policy_pb2,
                        reflection_pb2, reflection_pb2_grpc)


class MutualTlsTest(RemoteTestCase):
    """The TCP admin listener: mutual TLS and the identity allow-list."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.certs
        cls.server = c.leaf("admin-server", cn="remoted.qtls.test", dns=["remoted.qtls.test"])
        cls.writer = c.leaf("admin-writer", cn="ops.qtls.test", ips=[])
        cls.reader = c.leaf("admin-reader", cn="viewer.qtls.test", ips=[])
        cls.stranger = c.leaf("admin-stranger", cn="stranger.qtls.test", ips=[])
        cls.other = certs.CertFactory(os.path.join(cls.root), ca_name="impostor CA")
        cls.impostor = cls.other.leaf("impostor", cn="ops.qtls.test", ips=[])

    def start_tcp(self):
        clients = os.path.join(self.dir, "admin-clients")
        with open(clients, "w") as f:
            f.write("# identity rights\nops.qtls.test write\nviewer.qtls.test read\n")
        self.start_daemon(args=["--admin-listen", "127.0.0.1:0",
                                "--admin-cert", self.server.cert_path,
                                "--admin-key", self.server.key_path,
                                "--admin-client-ca", self.certs.ca.cert_path,
                                "--admin-clients", clients])
        wait_for(lambda: re.search(r"admin listen=(127\.0\.0\.1:\d+)", self.daemon.read_log()),
                 what="admin listen")
        return re.search(r"admin listen=(127\.0\.0\.1:\d+)", self.daemon.read_log()).group(1)

    def channel(self, addr, identity=None):
        def read(p):
            with open(p, "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(self.certs.ca.cert_path),
            private_key=read(identity.key_path) if identity else None,
            certificate_chain=read(identity.cert_path) if identity else None)
        return Api(grpc.secure_channel(addr, creds, options=(
            ("grpc.ssl_target_name_override", "remoted.qtls.test"),)))

    def test_refusals_each_with_the_right_code(self):
        addr = self.start_tcp()
        writer = self.channel(addr, self.writer)
        gen = writer.get().generation
        self.assertTrue(writer.put(gen, {"notlshosts/a.test": ""}).applied)
        audit = self.daemon.read_log()
        self.assertIn("caller=mtls:ops.qtls.test@ipv4:127.0.0.1:", audit)

        reader = self.channel(addr, self.reader)
        self.assertEqual(reader.get().generation, gen + 1)
        code, details = code_of(lambda: reader.put(gen + 1, {"notlshosts/b.test": ""}))
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("viewer.qtls.test has read rights only", details)
        code, _ = code_of(lambda: reader.policy.Rollback(
            policy_pb2.RollbackRequest(expected_generation=gen + 1)))
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)

        # Denied calls are audited with the identity and the address they came from.
        self.assertRegex(self.daemon.read_log(),
                         r"audit daemon=qtls-remoted caller=mtls:viewer\.qtls\.test@ipv4:"
                         r"127\.0\.0\.1:\d+ op=ApplyPolicy result=denied .*has read rights only")

        stranger = self.channel(addr, self.stranger)  # right CA, not on the list
        code, details = code_of(stranger.get)
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("stranger.qtls.test is not on this daemon's admin allow-list", details)
        code, _ = code_of(lambda: stranger.health.Check(health_pb2.HealthCheckRequest(), timeout=5))
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        refl = reflection_pb2_grpc.ServerReflectionStub(stranger.channel)
        code, _ = code_of(lambda: next(refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)))
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        log = self.daemon.read_log()
        for op in ("GetPolicy", "Check", "ServerReflectionInfo"):
            self.assertRegex(log, r"audit daemon=qtls-remoted caller=mtls:stranger\.qtls\.test"
                                  r"@ipv4:127\.0\.0\.1:\d+ op=%s result=denied" % op)
        with open(os.path.join(self.daemon.state_dir, "audit.log")) as f:
            self.assertIn("op=GetPolicy result=denied", f.read())

        # No certificate, or one from another CA: the TLS handshake fails, nothing is served,
        # and the log says who tried and why.
        for api in (self.channel(addr, None), self.channel(addr, self.impostor)):
            code, _ = code_of(lambda: api.policy.GetPolicy(policy_pb2.GetPolicyRequest(), timeout=5))
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        # The client may see the failure before the daemon has written its line.
        for why in (r"error:[0-9A-F]+:SSL routines::peer did not return a certificate",
                    r"client certificate: unable to get local issuer certificate"):
            pattern = r"admin: refused TLS handshake from ipv4:127\.0\.0\.1:\d+: " + why
            wait_for(lambda: re.search(pattern, self.daemon.read_log()), what=pattern)
        self.assertEqual(writer.get().generation, gen + 1)  # nothing changed
        # qtlsctl over mTLS.
        p = subprocess.run([QTLSCTL, "--target", addr, "--cert", self.reader.cert_path,
                            "--key", self.reader.key_path, "--ca", self.certs.ca.cert_path,
                            "--server-name", "remoted.qtls.test", "policy", "rollback"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 6, p.stderr)
        self.assertIn("PERMISSION_DENIED", p.stderr)

    def test_tcp_without_mutual_tls_is_refused_at_start(self):
        with self.assertRaises(AssertionError) as e:
            self.start_daemon(args=["--admin-listen", "127.0.0.1:0"])
        self.assertIn("qtls-remoted: fatal: refusing to serve the admin API on TCP 127.0.0.1:0 "
                      "without mutual TLS", str(e.exception))


if __name__ == "__main__":
    unittest.main()
