"""The admin gRPC API driven from a second implementation: Python's grpcio (Debian's
python3-grpcio), with stubs generated here by protoc and Debian's grpc_python_plugin from
proto/. A policy applied over gRPC governs the next delivery through the shim; mutual TLS
refuses what it must; eight clients racing on compare-and-swap leave a linear history; a
daemon killed in the middle of a commit comes back with the old or the new policy whole;
qtlsctl's tables and exit codes."""
import concurrent.futures
import grp
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import BUILD, Remoted, RemoteTestCase, wait_for
from smtpd_harness import SmtpdTestCase

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QTLSCTL = os.path.join(BUILD, "services", "ctl", "qtlsctl")
ARGV = ("example.test", "a@sender.test", "u@example.test")

# Only the parts of grpc.reflection.v1alpha this test needs (unknown fields are skipped).
REFLECTION_PROTO = """
syntax = "proto3";
package grpc.reflection.v1alpha;
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {  // a oneof: sent even when empty
    string file_containing_symbol = 4;
    string list_services = 7;
  }
}
message ServiceResponse { string name = 1; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
message ServerReflectionResponse {
  FileDescriptorResponse file_descriptor_response = 4;
  ListServiceResponse list_services_response = 6;
  ErrorResponse error_response = 7;
}
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest) returns (stream ServerReflectionResponse);
}
"""


def generate_stubs():
    """protoc + grpc_python_plugin into a temporary directory on sys.path."""
    out = tempfile.mkdtemp(prefix="qtls-stubs-")
    src = os.path.join(out, "src")
    # Module paths follow file paths: keep health and reflection clear of the real `grpc`
    # package; the proto package names (what goes on the wire) stay the standard ones.
    os.makedirs(os.path.join(src, "qtls_std"))
    with open(os.path.join(REPO, "proto", "grpc", "health", "v1", "health.proto")) as f:
        health = f.read()
    with open(os.path.join(src, "qtls_std", "health.proto"), "w") as f:
        f.write(health)
    with open(os.path.join(src, "qtls_std", "reflection.proto"), "w") as f:
        f.write(REFLECTION_PROTO)
    gen = os.path.join(out, "gen")
    os.makedirs(gen)
    for include, files in ((os.path.join(REPO, "proto"), ["qtls/v1/policy.proto",
                                                          "qtls/v1/metrics.proto"]),
                           (src, ["qtls_std/health.proto", "qtls_std/reflection.proto"])):
        subprocess.run(["protoc", "-I", include, "--python_out=" + gen, "--grpc_out=" + gen,
                        "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"] + files,
                       check=True)
    sys.path.insert(0, gen)


generate_stubs()
import grpc  # noqa: E402
from qtls.v1 import metrics_pb2, metrics_pb2_grpc, policy_pb2, policy_pb2_grpc  # noqa: E402
from qtls_std import health_pb2, health_pb2_grpc, reflection_pb2, reflection_pb2_grpc  # noqa: E402


class Api:
    def __init__(self, channel):
        self.channel = channel
        self.policy = policy_pb2_grpc.PolicyServiceStub(channel)
        self.metrics = metrics_pb2_grpc.TlsMetricsServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def get(self):
        return self.policy.GetPolicy(policy_pb2.GetPolicyRequest(), timeout=10)

    def put(self, expected, files, remove=(), dry_run=False, replace=False):
        req = policy_pb2.ApplyPolicyRequest(expected_generation=expected, dry_run=dry_run,
                                            replace=replace, remove=list(remove), reason="test")
        for path, content in files.items():
            req.put.add(path=path, content=content.encode() if isinstance(content, str) else content)
        return self.policy.ApplyPolicy(req, timeout=20)


def unix_api(path):
    return Api(grpc.insecure_channel("unix:" + path))


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def ctl(daemon_socket, *args, env=None):
    p = subprocess.run([QTLSCTL, "--target", "unix://" + daemon_socket] + list(args),
                       capture_output=True, text=True, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr


class RemotedAdminTest(RemoteTestCase):
    def api(self):
        return unix_api(self.daemon.admin_socket)

    def audit_lines(self):
        path = os.path.join(self.daemon.state_dir, "audit.log")
        with open(path) as f:
            return f.read().splitlines()

    def test_python_client_applies_policy_and_the_next_delivery_obeys(self):
        p = self.peer()  # plain SMTP: no STARTTLS
        self.route("example.test", p)
        self.start_daemon()
        api = self.api()
        got = api.get()
        self.assertEqual(got.generation, 1)
        self.assertEqual(got.daemon, "qtls-remoted")
        self.assertTrue(self.deliver(ARGV).startswith(b"r\0K127.0.0.2 accepted message."))

        # Watch sessions from here on: the next delivery must show up as a record.
        records = []
        call = api.metrics.WatchSessions(metrics_pb2.WatchSessionsRequest(
            direction=metrics_pb2.WatchSessionsRequest.DIRECTION_OUTBOUND))
        call.initial_metadata()  # subscribed once the headers are here
        reader = threading.Thread(target=lambda: records.extend([next(call)]), daemon=True)
        reader.start()

        dry = api.put(1, {"tlspolicy": "example.test encrypt\n"}, dry_run=True)
        self.assertFalse(dry.applied)
        self.assertEqual(dry.changes[0].diff,
                         "--- a/tlspolicy\n+++ b/tlspolicy\n@@ -0,0 +1,1 @@\n+example.test encrypt\n")
        self.assertFalse(os.path.exists(os.path.join(self.home.control, "tlspolicy")))
        r = api.put(1, {"tlspolicy": "example.test encrypt\n"})
        self.assertTrue(r.applied)
        self.assertEqual((r.generation_before, r.generation_after), (1, 2))
        with open(os.path.join(self.home.control, "tlspolicy")) as f:
            self.assertEqual(f.read(), "example.test encrypt\n")

        before = len(p.transcript)
        out = self.deliver(ARGV)
        self.assertEqual(out, b"ZNo TLS achieved while control/tlspolicy line 1 requires encrypt; "
                              b"connecting to 127.0.0.2.\n\0")
        self.assertNotIn("MAIL FROM:<a@sender.test>", p.transcript[before:])
        reader.join(10)
        call.cancel()
        self.assertEqual(len(records), 1)
        rec = records[0]
        self.assertEqual((rec.direction, rec.domain, rec.outcome, rec.level_requested,
                          rec.policy_generation, rec.failure_reason),
                         ("outbound", "example.test", "Z", "encrypt", 2, "no_starttls"))

        resolved = api.policy.ResolvePolicy(policy_pb2.ResolvePolicyRequest(domain="example.test"))
        self.assertEqual(resolved.level, policy_pb2.TLS_LEVEL_ENCRYPT)
        self.assertEqual(resolved.source, "tlspolicy")
        self.assertEqual(resolved.generation, 2)

        failures = api.metrics.GetStats(metrics_pb2.GetStatsRequest(
            name_prefix="qtls_remote_tls_failures_total"))
        # Every known label set is there (at zero until it happens); this one happened once.
        self.assertEqual([(tuple((l.name, l.value) for l in s.labels), s.value)
                          for f in failures.families for s in f.samples if s.value],
                         [((("level", "encrypt"), ("reason", "no_starttls")), 1)])
        stats = api.metrics.GetStats(metrics_pb2.GetStatsRequest(name_prefix="qtls_policy_"))
        by = {(f.name, tuple((l.name, l.value) for l in s.labels)): s.value
              for f in stats.families for s in f.samples}
        self.assertEqual(by[("qtls_policy_generation", ())], 2)
        self.assertEqual(by[("qtls_policy_updates_total", (("op", "apply"), ("result", "applied")))],
                         1)
        audit = [l for l in self.audit_lines() if "op=apply" in l]
        self.assertEqual(len(audit), 1)
        self.assertRegex(audit[0], r"caller=unix op=apply result=applied generation=1->2 "
                                   r"digest=sha256:[0-9a-f]{64} changes=\+tlspolicy reason=test")
        self.assertIn(audit[0], self.daemon.read_log())

    def test_invalid_changes_are_refused_with_the_field_and_nothing_changes(self):
        self.start_daemon()
        api = self.api()
        listing = sorted(os.listdir(self.home.control))
        for files, remove, want in (
                ({"tlshosts/../../../tmp/evil.pem": "x"}, (), r'put tlshosts/\.\./\.\./\.\./tmp/evil\.pem: "\.\."'),
                ({"notlshosts/a\0b": ""}, (), "NUL"),
                ({"tlshosts/mx.test.pem": "not a certificate\n"}, (),
                 "put tlshosts/mx.test.pem: no PEM certificate in it"),
                ({"tlspolicy": "example.test sometimes\n"}, (), "tlspolicy line 1"),
                ({"helohost": "x\n"}, (), "put helohost: not a file qtls-remoted policy owns"),
                ({}, ("notlshosts/never.test",), "no such file in generation 1")):
            code, details = code_of(lambda: api.put(1, files, remove))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
            self.assertRegex(details, want)
        self.assertEqual(sorted(os.listdir(self.home.control)), listing)
        self.assertFalse(os.path.exists("/tmp/evil.pem"))
        self.assertEqual(api.get().generation, 1)
        self.assertEqual(len([l for l in self.audit_lines() if "result=refused" in l]), 6)

    def test_eight_clients_racing_leave_a_linear_history(self):
        self.start_daemon()
        start = self.api().get().generation
        conflicts = []

        def client(i):
            api = self.api()  # its own channel, like a separate operator
            while True:
                cur = api.get()
                lines = [l for l in next((it.content.decode() for it in cur.items
                                          if it.path == "tlspolicy"), "").splitlines() if l]
                lines.append("d%d.example encrypt" % i)
                try:
                    r = api.put(cur.generation, {"tlspolicy": "\n".join(lines) + "\n"})
                    return r.generation_before, r.generation_after
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.ABORTED, e.details())
                    conflicts.append(i)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(8)))
        # Every client got exactly one step of the history, and the steps chain.
        self.assertEqual(sorted(results), [(start + k, start + k + 1) for k in range(8)])
        final = self.api().get()
        self.assertEqual(final.generation, start + 8)
        content = next(it.content.decode() for it in final.items if it.path == "tlspolicy")
        self.assertEqual(sorted(content.splitlines()),
                         sorted("d%d.example encrypt" % i for i in range(8)))  # none lost
        applied = [l for l in self.audit_lines() if "op=apply result=applied" in l]
        gens = [re.search(r"generation=(\d+)->(\d+)", l).groups() for l in applied]
        self.assertEqual(gens, [(str(start + k), str(start + k + 1)) for k in range(8)])
        refused = [l for l in self.audit_lines() if "result=refused" in l]
        self.assertEqual(len(refused), len(conflicts))
        print("8 clients: %d conflicts retried" % len(conflicts), file=sys.stderr)

    def test_killed_between_commit_steps_comes_back_whole(self):
        for point, new_wins in (("snapshot-written", False), ("pending-written", True),
                                ("control-partial", True)):
            with self.subTest(point=point):
                self.home.write("tlspolicy", "example.test may\n")
                self.home.write("notlshosts/old.test", "")
                for f in ("notlshosts/new.test",):
                    if os.path.exists(os.path.join(self.home.control, f)):
                        self.home.remove(f)
                env = dict(os.environ, QTLS_CRASH_POINT=point)
                old_environ = os.environ.copy()
                os.environ.update(env)
                try:
                    d = Remoted(self.home, self.dir, args=["--admin-listen",
                                                           "unix:" + os.path.join(self.dir, "a.sock")])
                finally:
                    os.environ.clear()
                    os.environ.update(old_environ)
                api = unix_api(os.path.join(self.dir, "a.sock"))
                gen = api.get().generation
                code, _ = code_of(lambda: api.put(gen, {"tlspolicy": "example.test verify\n",
                                                        "notlshosts/new.test": ""},
                                                  remove=["notlshosts/old.test"]))
                self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)  # it died mid-call
                d.proc.wait(10)
                self.assertEqual(d.proc.returncode, -signal.SIGKILL)
                d.log.close()
                d = Remoted(self.home, self.dir, args=["--admin-listen",
                                                       "unix:" + os.path.join(self.dir, "a.sock")])
                try:
                    api = unix_api(os.path.join(self.dir, "a.sock"))
                    after = api.get()
                    items = {it.path: it.content.decode() for it in after.items}
                    if new_wins:
                        self.assertEqual(after.generation, gen + 1)
                        self.assertEqual(items, {"tlspolicy": "example.test verify\n",
                                                 "notlshosts/new.test": ""})
                        self.assertIn("interrupted by a crash", d.read_log())
                    else:
                        self.assertEqual(after.generation, gen)
                        self.assertEqual(items, {"tlspolicy": "example.test may\n",
                                                 "notlshosts/old.test": ""})
                    on_disk = sorted(os.listdir(os.path.join(self.home.control, "notlshosts")))
                    self.assertEqual(on_disk, ["new.test"] if new_wins else ["old.test"])
                finally:
                    d.stop()

    def test_hand_edit_and_sighup_bump_the_generation(self):
        self.start_daemon()
        api = self.api()
        self.home.write("notlshosts/hand.test", "")
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: api.get().generation == 2, what="generation 2")
        self.assertIn("caller=SIGHUP op=hand-edit result=applied generation=1->2",
                      self.daemon.read_log())
        # Rollback undoes the hand edit as generation 3.
        r = api.policy.Rollback(policy_pb2.RollbackRequest(expected_generation=2))
        self.assertEqual((r.generation_after, r.changes[0].path), (3, "notlshosts/hand.test"))
        self.assertFalse(os.path.exists(os.path.join(self.home.control, "notlshosts/hand.test")))

    def test_health_is_not_serving_while_draining(self):
        p = self.peer(stall="dot")  # holds the delivery open after the message
        self.route("example.test", p)
        self.start_daemon()
        api = self.api()
        self.assertEqual(api.health.Check(health_pb2.HealthCheckRequest()).status,
                         health_pb2.HealthCheckResponse.SERVING)
        watch = api.health.Watch(health_pb2.HealthCheckRequest())
        self.assertEqual(next(watch).status, health_pb2.HealthCheckResponse.SERVING)
        t = threading.Thread(target=lambda: self.deliver(ARGV), daemon=True)
        t.start()
        wait_for(lambda: any("DATA" in l for l in p.transcript), what="delivery in flight")
        self.daemon.proc.send_signal(signal.SIGTERM)
        self.assertEqual(next(watch).status, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.assertEqual(api.health.Check(health_pb2.HealthCheckRequest()).status,
                         health_pb2.HealthCheckResponse.NOT_SERVING)
        code, details = code_of(lambda: api.put(1, {"notlshosts/x.test": ""}))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)
        watch.cancel()
        self.daemon.proc.kill()

    def test_reflection_lists_the_services(self):
        self.start_daemon()
        stub = reflection_pb2_grpc.ServerReflectionStub(
            grpc.insecure_channel("unix:" + self.daemon.admin_socket))
        reply = next(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in reply.list_services_response.service}
        self.assertLessEqual({"qtls.v1.PolicyService", "qtls.v1.TlsMetricsService",
                              "grpc.health.v1.Health"}, names)
        # Every service listed resolves to its file, health included (grpcurl needs this).
        from google.protobuf import descriptor_pb2
        for name in sorted(names):
            reply = next(stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)])))
            self.assertEqual(reply.error_response.error_code, 0,
                             "%s: %s" % (name, reply.error_response.error_message))
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in reply.file_descriptor_response.file_descriptor_proto]
            services = {f.package + "." + s.name for f in files for s in f.service}
            self.assertIn(name, services)

    def test_socket_modes_and_removed_at_stop(self):
        # Without --admin-group only the daemon's user; with it, that group too.
        self.start_daemon()
        self.assertEqual(os.stat(self.daemon.admin_socket).st_mode & 0o777, 0o600)
        self.daemon.stop()
        self.assertFalse(os.path.exists(self.daemon.admin_socket))
        group = grp.getgrgid(os.getgid()).gr_name
        self.start_daemon(args=["--admin-group", group])
        st = os.stat(self.daemon.admin_socket)
        self.assertEqual((st.st_mode & 0o777, st.st_gid), (0o660, os.getgid()))
        # A second daemon on the same state directory is refused before it publishes anything.
        os.makedirs(os.path.join(self.dir, "second"))
        with self.assertRaises(AssertionError) as e:
            Remoted(self.home, os.path.join(self.dir, "second"), args=[
                "--admin-listen", "none", "--state-dir", self.daemon.state_dir])
        self.assertIn("is in use by another daemon; give each instance its own --state-dir",
                      str(e.exception))

    def test_qtlsctl_tables_and_exit_codes(self):
        p = self.peer()
        self.route("example.test", p)
        self.start_daemon()
        sock = self.daemon.admin_socket
        rc, out, err = ctl(sock, "health")
        self.assertEqual((rc, out), (0, "SERVING\n"))
        tp = os.path.join(self.dir, "tp")
        with open(tp, "w") as f:
            f.write("example.test verify\n")
        rc, out, err = ctl(sock, "policy", "apply", "--put", "tlspolicy=" + tp,
                           "--reason", "ticket 7")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^applied: generation 1 -> 2 \(digest sha256:[0-9a-f]{64}\)\n"
                              r"  \+ tlspolicy \(tlspolicy\)\n")
        rc, out, err = ctl(sock, "policy", "get")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"qtls-remoted generation 2 digest sha256:[0-9a-f]{64}\n")
        self.assertRegex(out, r"\ntlspolicy +tlspolicy +[0-9a-f]{12} +20\n")
        digest = re.search(r"digest (sha256:[0-9a-f]{64})", out).group(1)
        # A stale generation: exit 5, both generations, and what to do.
        rc, out, err = ctl(sock, "policy", "apply", "--put", "tlspolicy=" + tp,
                           "--expect-generation", "1")
        self.assertEqual(rc, 5)
        self.assertIn("this change was made against generation 1, but generation 2 is in force",
                      err)
        self.assertIn("reapply your change to generation 2", err)
        # Compare-and-swap on content: the digest in force passes, another is exit 5.
        rc, out, err = ctl(sock, "policy", "apply", "--put", "tlspolicy=" + tp,
                           "--expect-digest", "sha256:" + "0" * 64)
        self.assertEqual(rc, 5, err)
        self.assertIn("ABORTED: content conflict: the change expected sha256:000", err)
        rc, out, err = ctl(sock, "policy", "apply", "--remove", "tlspolicy", "--dry-run",
                           "--expect-digest", digest)
        self.assertEqual(rc, 0, err)
        # A hand edit not yet reloaded: refused for now, exit 8, not a conflict to retry.
        self.home.write("notlshosts/hand.test", "")
        rc, out, err = ctl(sock, "policy", "apply", "--put", "tlspolicy=" + tp)
        self.assertEqual(rc, 8, err)
        self.assertIn("FAILED_PRECONDITION: control files were edited by hand", err)
        self.home.remove("notlshosts/hand.test")
        # Invalid: exit 4 with the daemon's reason.
        rc, out, err = ctl(sock, "policy", "apply", "--put", "../me=" + tp)
        self.assertEqual(rc, 4)
        self.assertIn("INVALID_ARGUMENT: put ../me:", err)
        # A directory in control/ layout as the whole policy: get, edit, diff, apply.
        staged = os.path.join(self.dir, "staged")
        rc, out, err = ctl(sock, "policy", "get", "--out", staged)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(staged, ".qtls-generation")) as f:
            self.assertEqual(f.read(), "2\n")
        os.unlink(os.path.join(staged, "tlspolicy"))
        os.makedirs(os.path.join(staged, "notlshosts"))
        open(os.path.join(staged, "notlshosts", "legacy.test"), "w").close()
        open(os.path.join(staged, "notlshosts", "legacy.test~"), "w").close()  # editor leftover
        with open(os.path.join(staged, "me"), "w") as f:
            f.write("ignored\n")
        rc, out, err = ctl(sock, "policy", "diff", "--from", staged)
        self.assertEqual(rc, 0, err)
        self.assertIn("dry run: would change generation 2", out)
        self.assertIn("  + notlshosts/legacy.test (notlshost)", out)
        self.assertIn("  - tlspolicy (tlspolicy)", out)
        self.assertIn("1 file(s) in %s are not part of qtls-remoted's policy" % staged, err)
        rc, out, err = ctl(sock, "--json", "policy", "apply", "--from", staged)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r'"generation_after": "3"')
        rc, out, err = ctl(sock, "policy", "resolve", "example.test")
        self.assertEqual(rc, 0, err)
        self.assertIn("level may (from default", out)
        rc, out, err = ctl(sock, "policy", "rollback", "--to", "2")
        self.assertEqual(rc, 0, err)
        self.assertIn("applied: generation 3 -> 4", out)
        rc, out, err = ctl(sock, "stats", "--prefix", "qtls_policy_generation")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"qtls_policy_generation +4\n")
        # Usage and an unreachable daemon.
        self.assertEqual(ctl(sock, "policy", "frobnicate")[0], 2)
        self.assertEqual(ctl(os.path.join(self.dir, "nothing.sock"), "--timeout", "2", "health")[0], 3)
        # watch: one line per delivery (the route was there from the start).
        w = subprocess.Popen([QTLSCTL, "--target", "unix://" + sock, "watch", "--count", "1"],
                             stdout=subprocess.PIPE, text=True)
        wait_for(lambda: "session watch started" in self.daemon.read_log(), what="watch")
        self.deliver(ARGV)
        out, _ = w.communicate(timeout=20)
        self.assertEqual(w.returncode, 0)
        self.assertRegex(out, r"outbound +\S*\[127\.0\.0\.2\]:\d+ example\.test "
                              r"level=verify/none tls=-/- .*outcome=Z")


class SmtpdAdminTest(SmtpdTestCase):
    """qtls-smtpd serves the same API over its inbound policy."""

    def test_server_certificate_applied_over_grpc_is_used_without_restart(self):
        self.home.remove("servercert.pem")
        self.start(tls_port=False)
        api = unix_api(self.agent.admin_socket)
        got = api.get()
        self.assertEqual(got.daemon, "qtls-smtpd")
        self.assertIn("servercert.pem", got.owned_patterns)
        records = []
        call = api.metrics.WatchSessions(metrics_pb2.WatchSessionsRequest(
            direction=metrics_pb2.WatchSessionsRequest.DIRECTION_INBOUND))
        call.initial_metadata()
        reader = threading.Thread(target=lambda: records.extend([next(call), next(call)]),
                                  daemon=True)
        reader.start()
        c = self.connect()
        c.reply()
        self.assertNotIn("STARTTLS", c.cmd("EHLO client.test"))
        c.cmd("QUIT")

        # A key that does not match the certificate is refused whole.
        other = self.certs.leaf("other-agent", dns=["agent.test"])
        with open(self.server.cert_path) as f, open(other.key_path) as k:
            mismatched = k.read() + f.read()
        code, details = code_of(lambda: api.put(got.generation, {"servercert.pem": mismatched}))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("put servercert.pem: the private key does not match", details)
        with open(self.server.pem_path) as f:
            r = api.put(got.generation, {"servercert.pem": f.read()})
        self.assertTrue(r.applied)
        self.assertEqual(r.changes[0].diff, "")  # a private key is never diffed
        shown = api.get()
        item = next(i for i in shown.items if i.path == "servercert.pem")
        self.assertTrue(item.redacted)
        self.assertNotIn(b"PRIVATE KEY", item.content)
        self.assertIn(b"BEGIN CERTIFICATE", item.content)

        c = self.connect()
        c.reply()
        self.assertIn("STARTTLS", c.cmd("EHLO client.test"))
        c.cmd("QUIT")
        reader.join(10)
        rc, out = self.swaks("--tls", "--quit-after", "EHLO")
        self.assertEqual(rc, 0, out)
        wait_for(lambda: api.metrics.GetStats(metrics_pb2.GetStatsRequest(
            name_prefix="qtls_agent_tls_sessions_total")).families[0].samples, what="tls session")
        tls = api.metrics.GetStats(metrics_pb2.GetStatsRequest(
            name_prefix="qtls_agent_tls_sessions_total")).families[0].samples[0]
        labels = {l.name: l.value for l in tls.labels}
        self.assertEqual((labels["tls_mode"], labels["version"], labels["resumed"], tls.value),
                         ("starttls", "TLSv1.3", "no", 1))
        self.assertRegex(labels["cipher"], r"^TLS_")
        call.cancel()
        self.assertEqual([(r.direction, r.tls_mode, r.domain) for r in records],
                         [("inbound", "plain", "client.test")] * 2)
        self.assertEqual([r.policy_generation for r in records], [1, 2])
        self.assertEqual([x.policy_digest for x in records], [got.digest, r.digest_after])

        stats = api.metrics.GetStats(metrics_pb2.GetStatsRequest(
            name_prefix="qtls_tls_cert_expiry"))
        sample = stats.families[0].samples[0]
        self.assertGreater(sample.value, time.time())

        resolved = api.policy.ResolvePolicy(policy_pb2.ResolvePolicyRequest(
            client_address="127.0.0.1", recipient="u@elsewhere.test"))
        self.assertTrue(resolved.starttls_offered)
        self.assertFalse(resolved.relay_allowed)
        self.assertFalse(resolved.recipient_accepted)
        self.assertIn("elsewhere.test is not in control/rcpthosts", resolved.reason)
        # The same question from qtlsctl, for an address and a recipient.
        rc, out, err = ctl(self.agent.admin_socket, "policy", "resolve", "--client", "127.0.0.1",
                           "--rcpt", "u@elsewhere.test")
        self.assertEqual(rc, 0, err)
        self.assertIn("starttls offered: yes\nrelay allowed: no\nrecipient accepted: no\n", out)
        self.assertIn("elsewhere.test is not in control/rcpthosts", out)
        self.home.write("relayclients", "127.0.0.1 relay\n")
        with open(os.path.join(self.dir, "relayclients"), "w") as f:
            f.write("127.0.0.0/8\n")
        rc, out, err = ctl(self.agent.admin_socket, "policy", "apply", "--put",
                           "relayclients=" + os.path.join(self.dir, "relayclients"))
        self.assertEqual(rc, 8, err)  # the hand-written file above is pending: refused for now
        self.home.remove("relayclients")
        rc, out, err = ctl(self.agent.admin_socket, "policy", "apply", "--put",
                           "relayclients=" + os.path.join(self.dir, "relayclients"))
        self.assertEqual(rc, 0, err)
        rc, out, err = ctl(self.agent.admin_socket, "policy", "resolve", "--client", "127.0.0.1",
                           "--rcpt", "u@elsewhere.test")
        self.assertEqual(rc, 0, err)
        self.assertIn("relay allowed: yes\nrecipient accepted: yes\n", out)


if __name__ == "__main__":
    unittest.main()
