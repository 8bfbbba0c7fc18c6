"""Pieces for the inbound agent's tests: a qmail home with certificates, the agent as a real
process with the fake qmail-queue, and small raw-socket SMTP clients."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, QmailHome, certs, check_sanitizer_report, free_port, wait_for

SMTPD = os.path.join(BUILD, "agent", "qtls-smtpd")
FAKEQ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qmail_queue.py")


class Agent:
    def __init__(self, home, root, queue_dir, args=(), queue=FAKEQ, tls_port=True, env=None):
        self.port = free_port("127.0.0.1")
        self.tls_port = free_port("127.0.0.1") if tls_port else None
        self.log_path = os.path.join(root, "smtpd-%d.log" % self.port)
        cmd = [SMTPD, "--qmail-home", home.path, "--qmail-queue", queue,
               "--listen", "127.0.0.1:%d" % self.port, "--metrics-listen", "127.0.0.1:0"]
        if self.tls_port:
            cmd += ["--listen", "127.0.0.1:%d,tls" % self.tls_port]
        self.admin_socket = os.path.join(root, "smtpd-admin-%d.sock" % self.port)
        self.state_dir = os.path.join(root, "smtpd-state-%d" % self.port)
        cmd += ["--state-dir", self.state_dir]
        if not any(a == "--admin-listen" for a in args):
            cmd += ["--admin-listen", "unix:" + self.admin_socket]
        if "--user" not in args:
            cmd += ["--user", "root"]  # the tests run as root; the daemon refuses it unasked
        if "--watch-control" not in args:
            # Hand edits apply at SIGHUP in tests that do not test the watch: a reload of its
            # own would shift the generation numbers they expect.
            cmd += ["--watch-control", "0"]
        cmd += list(args)
        e = dict(os.environ)
        e["FAKEQ_DIR"] = queue_dir
        e.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=e)
        wait_for(lambda: "started" in self.read_log() or self.proc.poll() is not None,
                 what="qtls-smtpd start")
        if self.proc.poll() is not None:
            raise AssertionError("qtls-smtpd exited: " + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """Stops the daemon; a sanitizer report in its log (build-asan) fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        check_sanitizer_report(self.read_log())


class Client:
    """A raw SMTP client on a real socket: send exact bytes, read replies."""

    def __init__(self, port, host="127.0.0.1", implicit_ctx=None, timeout=10, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if implicit_ctx:
            self.sock = implicit_ctx.wrap_socket(self.sock, server_hostname="agent.test")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One complete reply, as text with CRLFs."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % (b"".join(lines) + self.buf))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return "\r\n".join(l.decode(errors="replace") for l in lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self, ctx, hostname="agent.test"):
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def client_context(ca=None, cert=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify and ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
    return ctx


class SmtpdTestCase(unittest.TestCase):
    """Certificates for the class; a fresh qmail home, queue directory and agent per test."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="qtls-smtpd-")
        os.chmod(cls.root, 0o755)
        cls.certs = certs.CertFactory(cls.root)
        c = cls.certs
        cls.server = c.leaf("agent", dns=["agent.test"], ips=["127.0.0.1"])
        cls.rsa_free_alt = c.leaf("other-name", dns=["other.test"], ips=["127.0.0.1"])
        cls.client = c.leaf("client", cn="client", email="relay@client.test", ips=[])
        cls.unlisted = c.leaf("unlisted", cn="unlisted", email="nobody@client.test", ips=[])
        cls.noemail = c.leaf("noemail", cn="noemail", ips=[])
        cls.expired = c.leaf("expired", cn="old", email="relay@client.test", ips=[], expired=True)
        cls.revoked = c.leaf("revoked", cn="revoked", email="relay@client.test", ips=[])
        cls.crl = c.crl("crl", [cls.revoked])
        cls.other_ca = certs.CertFactory(os.path.join(cls.root), ca_name="foreign CA")
        cls.foreign = cls.other_ca.leaf("foreign", cn="foreign", email="relay@client.test", ips=[])

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("QTLS_KEEP"):
            shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.root)
        os.chmod(self.dir, 0o755)
        self.home = QmailHome(self.dir)
        self.home.write("me", "mx.agent.test\n")
        self.home.write("rcpthosts", "agent.test\n.sub.agent.test\n")
        with open(self.server.pem_path) as f:
            self.home.write("servercert.pem", f.read(), 0o600)
        self.qdir = os.path.join(self.dir, "queue")
        os.makedirs(self.qdir)
        os.chmod(self.qdir, 0o777)
        self.agent = None
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        if self.agent:
            self.agent.stop()

    def start(self, args=(), **kw):
        self.agent = Agent(self.home, self.dir, self.qdir, args, **kw)
        return self.agent

    def connect(self, implicit_ctx=None, port=None):
        c = Client(port or (self.agent.tls_port if implicit_ctx else self.agent.port),
                   implicit_ctx=implicit_ctx)
        self.clients.append(c)
        return c

    def records(self):
        out = []
        for name in sorted(os.listdir(self.qdir)):
            if name.endswith(".env"):
                base = os.path.join(self.qdir, name[:-4])
                out.append((open(base + ".msg", "rb").read(), open(base + ".env", "rb").read()))
        return out

    def set_queue_exit(self, code):
        with open(os.path.join(self.qdir, "exitcode"), "w") as f:
            f.write(str(code))

    def swaks(self, *args, port=None):
        cmd = ["swaks", "--server", "127.0.0.1:%d" % (port or self.agent.port),
               "--helo", "client.test", "--from", "a@b.test", "--to", "u@agent.test"] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr


RECEIVED_DATE = r"\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} -0000"
