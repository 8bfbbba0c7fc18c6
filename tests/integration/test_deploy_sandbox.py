"""The shipped systemd unit against a qmail-queue that is really setuid (issue 8, item 11).

qmail's qmail-queue is setuid qmailq and qtls-smtpd runs it as qmaild. A unit that sets
NoNewPrivileges=yes makes the kernel ignore the setuid bit, and every message then gets
`451 qq trouble creating files in queue (#4.3.0)`. These tests read
deploy/systemd/qtls-smtpd.service, start the agent under `setpriv` with the privilege settings
the unit gives it (no_new_privs, capability bounding set, securebits), dropping to a user of
its own with `--user` as the unit's ExecStart does, and hand each message to a setuid stand-in
(setuid_qmail_queue.c, compiled here) owned by another user, which queues only when its
effective uid is its owner's.

QTLS_SMTPD_UNIT=PATH runs them against another copy of the unit. Needs root (chown, setuid),
`cc` and `setpriv`."""
import os
import pwd
import shlex
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import unittest

from harness import BUILD, QmailHome, certs, free_port, wait_for
from smtpd_harness import SMTPD, Agent

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.environ.get("QTLS_SMTPD_UNIT") or os.path.join(
    HERE, "..", "..", "deploy", "systemd", "qtls-smtpd.service")
STAND_IN = os.path.join(HERE, "setuid_qmail_queue.c")
AGENT_USER = "nobody"   # plays qmaild
QUEUE_OWNER = "daemon"  # plays qmailq: any user other than the agent's
UNIT_UMASK = 0o077
QQ_TROUBLE = "451 qq trouble creating files in queue (#4.3.0)"

# systemd.exec(5), NoNewPrivileges=: these imply it for a process without CAP_SYS_ADMIN.
IMPLY_NNP = ("LockPersonality", "MemoryDenyWriteExecute", "PrivateDevices", "ProtectClock",
             "ProtectHostname", "ProtectKernelLogs", "ProtectKernelModules",
             "ProtectKernelTunables", "RestrictAddressFamilies", "RestrictNamespaces",
             "RestrictRealtime", "RestrictSUIDSGID", "SystemCallArchitectures",
             "SystemCallFilter", "SystemCallLog")
# Settings that change who the process is in ways setpriv here does not reproduce.
NOT_MIMICKED = ("User", "Group", "DynamicUser", "PrivateUsers", "AmbientCapabilities")


def read_unit(text):
    """The [Service] assignments of a unit file: {key: [values, in order]}. Comments and
    continuation lines as systemd reads them."""
    out, section, pending = {}, None, ""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith(("#", ";")):
            continue
        if s.endswith("\\"):
            pending += s[:-1] + " "
            continue
        s, pending = (pending + s).strip(), ""
        if not s:
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
        elif section == "Service" and "=" in s:
            key, value = s.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def boolean(values, default=False):
    if not values or values[-1] == "":
        return default
    return values[-1].lower() in ("1", "yes", "y", "true", "t", "on")


def bounding_set(values, all_caps):
    """CapabilityBoundingSet= lines as a set of setpriv names; None when unrestricted."""
    bset = None
    for v in values:
        if v == "":
            bset = set()
            continue
        inverted = v.startswith("~")
        caps = {c.lower().removeprefix("cap_") for c in v.lstrip("~").split()}
        if inverted:
            bset = (set(all_caps) if bset is None else bset) - caps
        else:
            bset = (set() if bset is None else bset) | caps
    return bset


def setpriv_flags(unit, all_caps):
    """setpriv options giving a process what systemd would give the unit's ExecStart=."""
    for key in NOT_MIMICKED:
        if key in unit and unit[key][-1] not in ("", "no", "false", "root", "0"):
            raise AssertionError("%s=%s: this test does not reproduce it; extend it (a setuid "
                                 "qmail-queue must still work)" % (key, unit[key][-1]))
    flags = []
    bset = bounding_set(unit.get("CapabilityBoundingSet", []), all_caps)
    has_sys_admin = bset is None or "sys_admin" in bset
    implied = any(unit.get(k) and unit[k][-1] not in ("", "no", "false", "0") for k in IMPLY_NNP)
    if boolean(unit.get("NoNewPrivileges")) or (implied and not has_sys_admin):
        flags.append("--no-new-privs")
    if bset is not None:
        flags += ["--bounding-set", ",".join(["-all"] + ["+" + c for c in sorted(bset)])]
    if unit.get("SecureBits") and unit["SecureBits"][-1]:
        bits = unit["SecureBits"][-1].replace("-", "_").split()
        flags += ["--securebits", ",".join("+" + b for b in bits)]
    return flags


def setuid_capable_dir():
    """A directory for the stand-in on a file system not mounted nosuid."""
    for d in (tempfile.gettempdir(), os.path.abspath(BUILD)):
        if not os.statvfs(d).f_flag & os.ST_NOSUID:
            return d
    raise AssertionError("every candidate directory is on a nosuid mount; the setuid "
                         "stand-in cannot work there")


def all_capabilities():
    return subprocess.run(["setpriv", "--list-caps"], capture_output=True, text=True,
                          check=True).stdout.split()


class SandboxedAgent(Agent):
    """qtls-smtpd started by setpriv with the given flags, with the default qmail-queue
    (<home>/bin/qmail-queue), plain SMTP only, dropping to `user` after binding."""

    def __init__(self, home, root, flags, user, state_dir=None, umask=None):
        self.port = free_port("127.0.0.1")
        self.tls_port = None
        self.log_path = os.path.join(root, "smtpd-%d.log" % self.port)
        self.state_dir = state_dir or os.path.join(root, "smtpd-state-%d" % self.port)
        cmd = ["setpriv"] + flags + ["--", SMTPD, "--qmail-home", home.path,
                                     "--listen", "127.0.0.1:%d" % self.port,
                                     "--metrics-listen", "none", "--admin-listen", "none",
                                     "--state-dir", self.state_dir, "--user", user]
        self.cmd = cmd
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     preexec_fn=(lambda: os.umask(umask)) if umask else None)
        wait_for(lambda: "started" in self.read_log() or self.proc.poll() is not None,
                 what="qtls-smtpd start")
        if self.proc.poll() is not None:
            self.log.close()
            raise AgentExited(self.proc.returncode, self.read_log())


class AgentExited(AssertionError):
    def __init__(self, code, log):
        super().__init__("qtls-smtpd exited %d: %s" % (code, log))
        self.code, self.log = code, log


class UnitParsingTest(unittest.TestCase):
    CAPS = ["chown", "net_bind_service", "setgid", "setuid", "sys_admin"]

    def flags(self, text):
        return setpriv_flags(read_unit(text), self.CAPS)

    def test_no_new_privileges(self):
        self.assertEqual(self.flags("[Service]\nNoNewPrivileges=yes\n"), ["--no-new-privs"])
        self.assertEqual(self.flags("[Service]\nNoNewPrivileges=yes\nNoNewPrivileges=no\n"), [])
        self.assertEqual(self.flags("[Unit]\nNoNewPrivileges=yes\n[Service]\n"), [])
        self.assertEqual(self.flags("[Service]\n#NoNewPrivileges=yes\n"), [])

    def test_implied_without_sys_admin(self):
        self.assertEqual(self.flags("[Service]\nSystemCallFilter=@system-service\n"), [])
        self.assertEqual(
            self.flags("[Service]\nSystemCallFilter=@system-service\n"
                       "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID\n"),
            ["--no-new-privs", "--bounding-set", "-all,+net_bind_service,+setgid,+setuid"])
        self.assertEqual(self.flags("[Service]\nCapabilityBoundingSet=~CAP_SYS_ADMIN CAP_CHOWN\n"),
                         ["--bounding-set", "-all,+net_bind_service,+setgid,+setuid"])

    def test_not_mimicked(self):
        with self.assertRaises(AssertionError):
            self.flags("[Service]\nPrivateUsers=yes\n")


@unittest.skipUnless(os.geteuid() == 0, "needs root: chown and setuid")
class DeploySandboxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("cc", "setpriv"):
            if shutil.which(tool) is None:
                raise AssertionError(tool + " is missing (scripts/setup.sh installs it)")
        with open(UNIT) as f:
            cls.unit = read_unit(f.read())
        cls.unit_flags = setpriv_flags(cls.unit, all_capabilities())

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="qtls-sandbox-", dir=setuid_capable_dir())
        os.chmod(self.dir, 0o755)  # the agent's user must reach the qmail home
        if not os.environ.get("QTLS_KEEP"):
            self.addCleanup(shutil.rmtree, self.dir, True)
        self.home = QmailHome(self.dir)
        self.home.write("me", "mx.agent.test\n")
        self.home.write("rcpthosts", "agent.test\n")
        owner = pwd.getpwnam(QUEUE_OWNER)
        self.owner_uid = owner.pw_uid
        # <home>/bin/qmail-queue, setuid QUEUE_OWNER; <home>/queue writable by it alone.
        bindir = os.path.join(self.home.path, "bin")
        os.makedirs(bindir)
        qq = os.path.join(bindir, "qmail-queue")
        subprocess.run(["cc", "-O2", "-o", qq, STAND_IN], check=True)
        os.chown(qq, owner.pw_uid, owner.pw_gid)
        os.chmod(qq, 0o4755)  # after chown, which clears the setuid bit
        self.queue = os.path.join(self.home.path, "queue")
        os.makedirs(self.queue)
        os.chown(self.queue, owner.pw_uid, owner.pw_gid)
        os.chmod(self.queue, 0o700)
        self.agent = None

    def tearDown(self):
        if self.agent:
            self.agent.stop()

    def start(self, flags, **kw):
        self.agent = SandboxedAgent(self.home, self.dir, flags, AGENT_USER, **kw)
        return self.agent

    def systemd_state_dir(self):
        """What the unit's `ExecStartPre=+/bin/mkdir -p -m 0700 /var/lib/qtls/smtpd` gives:
        a fresh directory of root's, mode 0700 (not StateDirectory=: see the unit)."""
        state = os.path.join(self.dir, "lib", "qtls", "smtpd")
        os.makedirs(state)
        os.chmod(state, 0o700)
        return state

    def start_as_unit(self):
        """The agent as the unit starts it: its privileges, UMask=0077, the state directory
        systemd makes. A second start must work too (the state is then the agent user's)."""
        return self.start(self.unit_flags, state_dir=self.state, umask=UNIT_UMASK)

    def send(self):
        """One message over SMTP; the final reply as text."""
        with smtplib.SMTP("127.0.0.1", self.agent.port, local_hostname="client.test",
                          timeout=30) as s:
            code, _ = s.mail("a@b.test")
            self.assertEqual(code, 250)
            code, _ = s.rcpt("u@agent.test")
            self.assertEqual(code, 250)
            code, text = s.data(b"Subject: sandbox\r\n\r\nhello\r\n")
            return "%d %s" % (code, text.decode())

    def queued(self):
        return sorted(os.listdir(self.queue))

    def test_unit_umask_and_fresh_state_dir_start_twice(self):
        self.assertEqual(self.unit["UMask"][-1], "0077")
        self.assertNotIn("StateDirectory", self.unit)
        self.assertIn("+/bin/mkdir -p -m 0700 /var/lib/qtls/smtpd",
                      self.unit.get("ExecStartPre", []))
        self.state = self.systemd_state_dir()
        for start in (1, 2):
            with self.subTest(start=start):
                self.start_as_unit()
                self.assertRegex(self.send(), r"^250 ok \d+ qp \d+$")
                self.agent.stop()
                self.agent = None
        agent_uid = pwd.getpwnam(AGENT_USER).pw_uid
        owners = {os.lstat(os.path.join(d, n)).st_uid
                  for d, ds, fs in os.walk(self.state) for n in ds + fs}
        self.assertEqual(owners, {agent_uid})
        self.assertEqual(os.stat(self.state).st_mode & 0o777, 0o700)
        # Snapshots hold the keys (for rollback and crash recovery): the agent user's alone,
        # the user that reads the live key anyway (docs/operations.md, "Keys in the state").
        gens = os.path.join(self.state, "generations")
        self.assertEqual(os.stat(gens).st_mode & 0o777, 0o700)
        snaps = os.listdir(gens)
        self.assertTrue(snaps)
        for n in snaps:
            self.assertEqual(os.stat(os.path.join(gens, n)).st_mode & 0o777, 0o600, n)

    def confine_servercert(self, owner, mode):
        """qtlsctl confine's layout: control/servercert.pem a link into the agent's policy
        directory, the certificate and key there owned by `owner` with `mode`."""
        pki_dir = os.path.join(self.dir, "pki")
        os.makedirs(pki_dir, exist_ok=True)
        pki = certs.CertFactory(pki_dir)
        server = pki.leaf("agent", dns=["mx.agent.test"], ips=["127.0.0.1"])
        policy = os.path.join(self.dir, "lib", "qtls", "policy", "smtpd")
        os.makedirs(policy, exist_ok=True)
        agent = pwd.getpwnam(AGENT_USER)
        os.chown(policy, agent.pw_uid, agent.pw_gid)
        os.chmod(policy, 0o700)
        target = os.path.join(policy, "servercert.pem")
        shutil.copy(server.pem_path, target)
        os.chown(target, owner.pw_uid, owner.pw_gid)
        os.chmod(target, mode)
        os.symlink(target, os.path.join(self.home.control, "servercert.pem"))
        return pki

    def test_confined_servercert_of_the_agent_user_is_used(self):
        # qmail-tls's layout (and `qtlsctl confine --owner qmaild`): the key is the agent
        # user's, mode 0640; the unit's root has no CAP_DAC_READ_SEARCH to read it.
        pki = self.confine_servercert(pwd.getpwnam(AGENT_USER), 0o640)
        self.state = self.systemd_state_dir()
        self.start_as_unit()
        ctx = ssl.create_default_context(cafile=pki.ca.cert_path)
        with smtplib.SMTP("127.0.0.1", self.agent.port, local_hostname="client.test",
                          timeout=30) as s:
            s.starttls(context=ctx)
            self.assertEqual(s.sock.version()[:3], "TLS")
            self.assertEqual(s.mail("a@b.test")[0], 250)
            self.assertEqual(s.rcpt("u@agent.test")[0], 250)
            code, text = s.data(b"Subject: sandbox\r\n\r\nover TLS\r\n")
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.queued()), 2)

    def test_servercert_the_agent_user_cannot_read_refuses_the_start(self):
        # Root's 0600 key: the agent reads policy as its user at every reload, so it refuses
        # to start on it rather than start and then fail every SIGHUP.
        self.confine_servercert(pwd.getpwnam("root"), 0o600)
        self.state = self.systemd_state_dir()
        with self.assertRaises(AgentExited) as e:
            self.start_as_unit()
        self.assertEqual(e.exception.code, 111)
        self.assertRegex(e.exception.log,
                         r"fatal: .*servercert\.pem: Permission denied \(policy and state are "
                         r"read as %s, as at every reload" % AGENT_USER)

    def test_unit_sandbox_runs_setuid_qmail_queue(self):
        exec_start = shlex.split(self.unit["ExecStart"][-1])
        self.assertIn("--user", exec_start, "the unit's agent drops privileges with --user")
        self.start(self.unit_flags)
        reply = self.send()
        self.assertNotIn("qq trouble", reply,
                         "setpriv %s (from %s) keeps qmail-queue's setuid bit from working"
                         % (" ".join(self.unit_flags), UNIT))
        self.assertRegex(reply, r"^250 ok \d+ qp \d+$")
        names = self.queued()
        self.assertEqual(len(names), 2, names)
        env = os.path.join(self.queue, [n for n in names if n.endswith(".env")][0])
        self.assertEqual(os.stat(env).st_uid, self.owner_uid)  # written as the queue's owner
        with open(env, "rb") as f:
            self.assertEqual(f.read(), b"Fa@b.test\0Tu@agent.test\0\0")
        with open(env[:-4] + ".msg", "rb") as f:
            self.assertIn(b"\n\nhello\n", f.read())

    def test_stand_in_refuses_under_no_new_privs(self):
        # What NoNewPrivileges=yes did: the check above is not vacuous.
        flags = [f for f in self.unit_flags if f != "--no-new-privs"] + ["--no-new-privs"]
        self.start(flags)
        self.assertEqual(self.send(), QQ_TROUBLE)
        self.assertEqual(self.queued(), [])
        self.assertIn("setuid bit not honoured", self.agent.read_log())


if __name__ == "__main__":
    unittest.main()
