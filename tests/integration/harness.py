"""Shared pieces for the integration tests: a qmail home, the daemon and the shim as real
processes, dnsmasq as a real DNS server, a scripted SMTP peer on real sockets, and the
qmail-rspawn report translation of spec 1.3."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data"))
import certs  # noqa: E402

BUILD = os.environ.get("QTLS_BUILD_DIR",
                       os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SHIM = os.path.join(BUILD, "services", "shim", "qtls-remote")
RSPAWN_TRANSLATE = os.path.join(BUILD, "tests", "rspawn_translate")
REMOTED = os.path.join(BUILD, "services", "remoted", "qtls-remoted")


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def metrics_address(log):
    """The host:port a daemon's /metrics endpoint bound, from its start-up log."""
    import re
    m = re.search(r"metrics listen=(\S+)", log)
    return m.group(1) if m else None


# The build-asan run: freed memory sits in ASan's quarantine, so RSS figures mean nothing there.
SANITIZED = os.environ.get("QTLS_SANITIZED") == "1"

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: UndefinedBehaviorSanitizer")


def check_sanitizer_report(log):
    """Raises if a daemon's log holds a sanitizer report (the build-asan test run)."""
    for mark in SANITIZER_MARKS:
        if mark in log:
            at = log.index(mark)
            raise AssertionError("sanitizer report in the daemon's log:\n" + log[max(0, at - 200):at + 3000])


def rspawn(out, status):
    """qmail-rspawn's report() (spec 1.3): what qmail-send finally sees. For a child that
    exited 0, the translation itself is qtls's own (shimproto/rspawn_report.h, which
    qtls-rspawn answers with), run through tests/tools/rspawn_translate; the other exit
    statuses are qmail-rspawn's fixed texts."""
    if status < 0:
        return b"Zqmail-remote crashed.\n"
    if status == 111:
        return b"ZUnable to run qmail-remote.\n"
    if status != 0:
        return b"DUnable to run qmail-remote.\n"
    return subprocess.run([RSPAWN_TRANSLATE], input=out, stdout=subprocess.PIPE, check=True,
                          timeout=30).stdout


class QmailHome:
    def __init__(self, root):
        self.path = os.path.join(root, "qmail")
        self.control = os.path.join(self.path, "control")
        os.makedirs(os.path.join(self.control, "tlshosts"))
        os.makedirs(os.path.join(self.control, "notlshosts"))
        self.write("me", "qtls.test\n")

    def write(self, name, content, mode=0o644):
        path = os.path.join(self.control, name)
        with open(path, "w" if isinstance(content, str) else "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def remove(self, name):
        os.unlink(os.path.join(self.control, name))


class Remoted:
    """qtls-remoted as a real process."""

    def __init__(self, home, root, dns_port=None, args=(), allow="0"):
        self.socket = os.path.join(root, "remoted.sock")
        self.log_path = os.path.join(root, "remoted.log")
        self.admin_socket = os.path.join(root, "remoted-admin.sock")
        self.state_dir = os.path.join(root, "remoted-state")
        cmd = [REMOTED, "--qmail-home", home.path, "--socket", self.socket,
               "--allow-user", allow, "--dns-timeout-ms", "500", "--metrics-listen", "127.0.0.1:0",
               "--state-dir", self.state_dir]
        if not any(a == "--admin-listen" for a in args):
            cmd += ["--admin-listen", "unix:" + self.admin_socket]
        if dns_port:
            cmd += ["--dns-server", "127.0.0.1:%d" % dns_port]
        if "--user" not in args:
            cmd += ["--user", "root"]  # the tests run as root; the daemon refuses it unasked
        if "--watch-control" not in args:
            # Hand edits apply at SIGHUP in tests that do not test the watch: a reload of its
            # own would shift the generation numbers they expect.
            cmd += ["--watch-control", "0"]
        cmd += list(args)
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # left by an earlier daemon in the same directory
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(self.socket) or self.proc.poll() is not None,
                 what="remoted socket")
        if self.proc.poll() is not None:
            self.log.close()
            raise AssertionError("qtls-remoted exited: " + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def metrics_address(self):
        return metrics_address(self.read_log())

    def stop(self):
        """Stops the daemon; a sanitizer report in its log (build-asan) fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        check_sanitizer_report(self.read_log())


def run_shim(socket_path, home, argv, message=b"Subject: t\n\nhello\n", pipe=False, env=None,
             timeout=60):
    """Runs the shim as qmail-rspawn does: message on fd 0 (a regular file unless pipe)."""
    e = {"PATH": "/usr/bin:/bin", "QMAILHOME": home.path, "QTLS_REMOTED_SOCKET": socket_path}
    e.update(env or {})
    with tempfile.TemporaryFile() as f:
        f.write(message)
        f.seek(0)
        io = {"input": message} if pipe else {"stdin": f}
        p = subprocess.run([SHIM] + list(argv), capture_output=True, env=e, timeout=timeout, **io)
    return p.stdout, p.stderr, p.returncode


def free_port_tcp_and_udp(host="127.0.0.1"):
    """A port free for both TCP and UDP: a UDP-free port may still carry TCP TIME_WAIT entries,
    and servers such as dnsmasq bind both without SO_REUSEADDR."""
    for _ in range(100):
        port = free_port(host, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            try:
                t.bind((host, port))
                return port
            except OSError:
                continue
    raise AssertionError("no port free for both TCP and UDP")


class Dnsmasq:
    """dnsmasq answering fixed records on 127.0.0.1, no upstream."""

    def __init__(self, records):
        self.port = free_port_tcp_and_udp("127.0.0.1")
        cmd = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
               "--listen-address=127.0.0.1", "--bind-interfaces", "--port=%d" % self.port,
               "--local=/test/", "--cache-size=0", "--log-facility=-", "--user=root",
               "--pid-file="] + list(records)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: self.proc.poll() is not None or self._answers(), what="dnsmasq")
        if self.proc.poll() is not None:
            raise AssertionError("dnsmasq failed: " + self.proc.stderr.read().decode())

    def _answers(self):
        """True once dnsmasq answers a query (any answer) on its port."""
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x05ready\x04test\x00\x00\x01\x00\x01")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                return s.recv(512)[:2] == b"\x12\x34"
            except OSError:
                return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.proc.stderr.close()


class SmtpPeer:
    """A scripted SMTP server on real loopback sockets. It answers like a normal server;
    `replies` overrides the reply for a stage (greeting, ehlo, helo, starttls, mail, rcpt, data,
    dot), `drop_after_dot` closes without answering the message, `starttls` offers STARTTLS
    with `server_ctx`, `implicit` does TLS before the greeting, `inject` is sent together with
    the 220 to STARTTLS, `stall` stops answering at that stage, `delay` waits that many seconds
    before answering a stage, `late_extra` = (seconds, bytes) sends unasked bytes that long after
    the greeting, `dribble` sends that stage's reply one byte every 0.3 s, endlessly;
    `pipelining` offers PIPELINING (RFC 2920; the client then sends MAIL, RCPTs and DATA in
    one write, `batches` records how many commands came in each read). Everything
    the client sent is in `transcript`; TLS facts of each session in `tls_info`."""

    def __init__(self, host="127.0.0.2", port=0, replies=None, server_ctx=None, starttls=False,
                 implicit=False, inject=b"", drop_after_dot=False, stall=None, raw_after=None,
                 tls_garbage=None, delay=None, late_extra=None, dribble=None, pipelining=True):
        self.replies = replies or {}
        self.server_ctx, self.starttls, self.implicit = server_ctx, starttls, implicit
        self.inject, self.drop_after_dot, self.stall = inject, drop_after_dot, stall
        self.raw_after = raw_after or {}
        self.tls_garbage = tls_garbage
        self.delay, self.late_extra, self.dribble = delay or {}, late_extra, dribble
        self.pipelining = pipelining
        self.transcript, self.tls_info, self.messages = [], [], []
        self.connections = 0
        self.dot_seen = False
        self.dots_seen = 0
        self.sni = []
        if server_ctx is not None:
            server_ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name) and None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.done.set()
        try:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # port bound until that accept() returned.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _reply(self, stage, default):
        return self.replies.get(stage, default)

    def _session(self, conn):
        conn.settimeout(30)
        self.connections += 1
        try:
            if self.implicit:
                conn = self.server_ctx.wrap_socket(conn, server_side=True)
                self._note_tls(conn)

            def send(line):
                if line is None:
                    return
                conn.sendall(line.encode() + b"\r\n" if isinstance(line, str) else line)

            def stalled(stage):
                if stage in self.delay:
                    time.sleep(self.delay[stage])
                if self.dribble == stage:
                    conn.sendall(b"220-")
                    while not self.done.is_set():
                        conn.sendall(b"x")
                        time.sleep(0.3)
                    return True
                if self.stall == stage:
                    time.sleep(60)
                    return True
                return False

            if stalled("greeting"):
                return
            send(self._reply("greeting", "220 peer.test ESMTP"))
            if self.late_extra:
                time.sleep(self.late_extra[0])
                conn.sendall(self.late_extra[1])
            tls_active = self.implicit
            buf = b""
            while True:
                while b"\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                raw, buf = buf.split(b"\n", 1)
                cmd = raw.rstrip(b"\r").decode(errors="replace")
                self.transcript.append(cmd)
                verb = cmd.split(" ")[0].upper()
                stage = {"EHLO": "ehlo", "HELO": "helo", "MAIL": "mail", "RCPT": "rcpt",
                         "DATA": "data", "STARTTLS": "starttls", "QUIT": "quit"}.get(verb)
                if stalled(stage):
                    return
                if stage in self.raw_after:
                    send(self.raw_after[stage])
                    continue
                if verb == "EHLO":
                    caps = ["250-peer.test"] + (["250-PIPELINING"] if self.pipelining else [])
                    if self.starttls and not tls_active:
                        caps.append("250-STARTTLS")
                    caps.append("250 8BITMIME")
                    send(self._reply("ehlo", "\r\n".join(caps)))
                elif verb == "HELO":
                    send(self._reply("helo", "250 peer.test"))
                elif verb == "STARTTLS":
                    r = self._reply("starttls", "220 ready for tls")
                    if not r.startswith("220"):
                        send(r)
                        continue
                    conn.sendall(r.encode() + b"\r\n" + self.inject)
                    if self.tls_garbage is not None:
                        conn.recv(65536)  # the ClientHello, answered with non-TLS bytes
                        conn.sendall(self.tls_garbage)
                        return
                    conn = self.server_ctx.wrap_socket(conn, server_side=True)
                    self._note_tls(conn)
                    tls_active = True
                    buf = b""
                elif verb == "MAIL":
                    send(self._reply("mail", "250 ok"))
                elif verb == "RCPT":
                    send(self._reply("rcpt", "250 ok"))
                elif verb == "DATA":
                    r = self._reply("data", "354 go ahead")
                    send(r)
                    if not r.startswith("354"):
                        continue
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            self.messages.append(None)
                            return
                        buf += chunk
                    body, buf = (b"\r\n" + buf).split(b"\r\n.\r\n", 1)
                    self.messages.append(body[2:] + b"\r\n")
                    if self.drop_after_dot:
                        return
                    self.dot_seen = True
                    self.dots_seen += 1
                    if stalled("dot"):
                        return
                    send(self._reply("dot", "250 ok queued"))
                elif verb == "QUIT":
                    send("221 bye")
                    if tls_active:
                        try:
                            conn.unwrap()
                        except (ssl.SSLError, OSError):
                            pass
                    return
                else:
                    send("502 unimplemented")
        except (ssl.SSLError, OSError) as e:
            self.tls_info.append({"error": str(e)})
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _note_tls(self, conn):
        peer = conn.getpeercert()
        self.tls_info.append({"version": conn.version(), "cipher": conn.cipher()[0],
                              "peer": peer})


def server_context(identity, client_ca=None, min_version=ssl.TLSVersion.TLSv1_2):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = min_version
    ctx.load_cert_chain(identity.cert_path, identity.key_path)
    if client_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(client_ca)
    return ctx


class RemoteTestCase(unittest.TestCase):
    """A fresh qmail home, certificates and (optionally) daemon per test."""

    dns_records = None

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="qtls-it-")
        cls.certs = certs.CertFactory(cls.root)
        cls.dns = Dnsmasq(cls.dns_records) if cls.dns_records else None

    @classmethod
    def tearDownClass(cls):
        if cls.dns:
            cls.dns.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.root)
        self.home = QmailHome(self.dir)
        self.daemon = None
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        if self.daemon:
            self.daemon.stop()

    def start_daemon(self, args=(), allow="0"):
        self.daemon = Remoted(self.home, self.dir, self.dns.port if self.dns else None, args, allow)
        return self.daemon

    def peer(self, **kw):
        p = SmtpPeer(**kw)
        self.peers.append(p)
        return p

    def route(self, domain, peer, relay=None):
        self.home.write("smtproutes", "%s:%s:%d\n" % (domain, relay or peer.host, peer.port))

    def deliver(self, argv, message=b"Subject: t\n\nhello\n", **kw):
        out, err, rc = run_shim(self.daemon.socket, self.home, argv, message, **kw)
        self.assertEqual(err, b"", "the shim wrote to fd 2")
        self.assertEqual(rc, 0)
        return out
