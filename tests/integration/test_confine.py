"""Confined writes (docs/operations.md, "Who may write control/"). After `qtlsctl confine`,
control/ stays root's, each daemon's policy names are links into a directory its own user
owns, and the daemon, running as that user, applies API changes but cannot create qmail's
other control files or touch the other daemon's policy. Before it, a change is refused with a
message that says what to do."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import BUILD, QmailHome, Remoted, certs, wait_for
from smtpd_harness import Agent

QTLSCTL = os.path.join(BUILD, "services", "ctl", "qtlsctl")
REMOTED_USER = pwd.getpwnam("daemon")
AGENT_USER = pwd.getpwnam("nobody")


def ctl(*args):
    p = subprocess.run([QTLSCTL] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def as_user(user, script):
    """Runs a shell command with the daemon user's uid, gid and no other groups."""
    return subprocess.run(["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
                           "--clear-groups", "sh", "-c", script],
                          capture_output=True, text=True, timeout=20)


class ConfineTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="qtls-confine-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.home = QmailHome(self.dir)
        for d in (self.home.path, self.home.control):
            os.chmod(d, 0o755)  # root's, as qmail installs it
        self.control = self.home.control
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.run_dir)
        os.chmod(self.run_dir, 0o777)
        self.lib = os.path.join(self.dir, "lib", "qtls", "policy")

    def confine(self, daemon, user, *extra):
        return ctl("confine", "--daemon", daemon, "--qmail-home", self.home.path,
                   "--policy-dir", os.path.join(self.lib, daemon.split("-")[1]),
                   "--owner", user.pw_name, *extra)

    def remoted(self):
        d = Remoted(self.home, self.run_dir, allow="0",
                    args=["--user", REMOTED_USER.pw_name])
        self.addCleanup(d.stop)
        return d

    def test_first_hand_edit_through_a_dangling_link_applies_by_itself(self):
        # confine links names whose files do not exist yet (clientcert.pem, tlspolicy here):
        # the watch covers the directory the link points into, so writing through the link
        # is a hand edit like any other.
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER)
        self.assertEqual(rc, 0, err)
        link = os.path.join(self.control, "tlspolicy")
        self.assertTrue(os.path.islink(link))
        self.assertFalse(os.path.exists(link))
        d = Remoted(self.home, self.run_dir, allow="0",
                    args=["--user", REMOTED_USER.pw_name, "--watch-control", "200"])
        self.addCleanup(d.stop)
        with open(link, "w") as f:
            f.write("boot.test encrypt\n")
        wait_for(lambda: "reload: control files loaded, generation 2 (inotify)" in d.read_log(),
                 what="the reload after the first write through the link")
        with open(link, "w") as f:
            f.write("boot.test verify\n")
        wait_for(lambda: "reload: control files loaded, generation 3 (inotify)" in d.read_log(),
                 what="the reload after the second write")

    def test_remoted_applies_changes_but_cannot_create_rcpthosts(self):
        # An existing install: tlspolicy and notlshosts/ as real files in control/.
        self.home.write("tlspolicy", "old.test encrypt\n")
        self.home.write("notlshosts/legacy.test", "")
        tp = os.path.join(self.dir, "tp")
        with open(tp, "w") as f:
            f.write("new.test verify\n")

        # Unconfined, control/ is not the daemon user's: a change is refused for now (exit 8).
        d = self.remoted()
        sock = "unix://" + d.admin_socket
        rc, out, err = ctl("--target", sock, "policy", "apply", "--put", "tlspolicy=" + tp)
        self.assertEqual(rc, 8, err)
        self.assertIn("FAILED_PRECONDITION: cannot write %s: Permission denied" % self.control,
                      err)
        self.assertIn("run `qtlsctl confine` once as root", err)
        d.stop()

        # A dry run says what it would do and changes nothing.
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER, "--dry-run")
        self.assertEqual(rc, 0, err)
        self.assertIn("move     %s/tlspolicy -> %s/remoted/tlspolicy" % (self.control, self.lib),
                      out)
        self.assertIn("link     %s/clientcert.pem" % self.control, out)
        self.assertFalse(os.path.islink(os.path.join(self.control, "tlspolicy")))
        # The real run, then a second one that finds nothing to do.
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER)
        self.assertEqual(rc, 0, err)
        self.assertIn("qtls-remoted: 5 name(s) changed", out)
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER)
        self.assertEqual(rc, 0, err)
        self.assertIn("qtls-remoted: 0 name(s) changed", out)
        own = os.path.join(self.lib, "remoted")
        for name in ("tlspolicy", "tlshosts", "notlshosts", "clientcert.pem", "tlsclientciphers"):
            self.assertEqual(os.readlink(os.path.join(self.control, name)),
                             os.path.join(own, name))
        with open(os.path.join(self.control, "tlspolicy")) as f:
            self.assertEqual(f.read(), "old.test encrypt\n")  # the content moved, unchanged
        self.assertEqual(os.stat(os.path.join(own, "notlshosts", "legacy.test")).st_uid,
                         REMOTED_USER.pw_uid)

        # Confined: the same daemon, as the same user, applies the change.
        d = self.remoted()
        rc, out, err = ctl("--target", sock, "policy", "apply", "--put", "tlspolicy=" + tp,
                           "--remove", "notlshosts/legacy.test")
        self.assertEqual(rc, 0, err)
        self.assertIn("applied: generation 1 -> 2", out)
        self.assertTrue(os.path.islink(os.path.join(self.control, "tlspolicy")))
        with open(os.path.join(own, "tlspolicy")) as f:
            self.assertEqual(f.read(), "new.test verify\n")
        self.assertFalse(os.path.exists(os.path.join(own, "notlshosts", "legacy.test")))
        rc, out, err = ctl("--target", sock, "policy", "resolve", "new.test")
        self.assertIn("level verify", out)

        # What that user cannot do: create qmail's other control files, or replace one.
        p = as_user(REMOTED_USER, "echo evil.test > %s/rcpthosts" % self.control)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Permission denied", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.control, "rcpthosts")))
        p = as_user(REMOTED_USER, "echo x > %s/me.new && mv %s/me.new %s/me"
                    % (self.control, self.control, self.control))
        self.assertIn("Permission denied", p.stderr)
        with open(os.path.join(self.control, "me")) as f:
            self.assertEqual(f.read(), "qtls.test\n")

        # A hand edit through the link is picked up by SIGHUP, as before.
        with open(os.path.join(self.control, "notlshosts", "hand.test"), "w"):
            pass
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "caller=SIGHUP op=hand-edit result=applied generation=2->3"
                 in d.read_log(), what="hand edit")

    def test_agent_applies_changes_but_cannot_create_smtproutes(self):
        os.makedirs(os.path.join(self.dir, "pki"))
        pki = certs.CertFactory(os.path.join(self.dir, "pki"))
        server = pki.leaf("agent", dns=["agent.test"], ips=["127.0.0.1"])
        self.home.write("rcpthosts", "agent.test\n")
        with open(server.pem_path) as f:
            self.home.write("servercert.pem", f.read(), 0o640)  # qmail-tls's mode
        rc, out, err = self.confine("qtls-smtpd", AGENT_USER)
        self.assertEqual(rc, 0, err)
        self.assertIn("qtls-smtpd: 7 name(s) changed", out)
        # The key is the agent's alone: the owner's group (nobody's here, qmaild's nofiles on
        # a qmail host) is a group other daemons run as.
        key = os.stat(os.path.join(self.lib, "smtpd", "servercert.pem"))
        self.assertEqual((key.st_uid, key.st_mode & 0o777), (AGENT_USER.pw_uid, 0o600))
        # remoted's policy, confined to its own user, is out of the agent's reach too.
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER)
        self.assertEqual(rc, 0, err)
        qdir = os.path.join(self.dir, "queue")
        os.makedirs(qdir)
        os.chmod(qdir, 0o777)
        agent = Agent(self.home, self.run_dir, qdir, args=["--user", AGENT_USER.pw_name],
                      tls_port=False)
        self.addCleanup(agent.stop)
        hosts = os.path.join(self.dir, "rcpthosts")
        with open(hosts, "w") as f:
            f.write("agent.test\nother.test\n")
        rc, out, err = ctl("--target", "unix://" + agent.admin_socket, "policy", "apply",
                           "--put", "rcpthosts=" + hosts)
        self.assertEqual(rc, 0, err)
        self.assertIn("applied: generation 1 -> 2", out)
        with open(os.path.join(self.control, "rcpthosts")) as f:
            self.assertEqual(f.read(), "agent.test\nother.test\n")
        self.assertTrue(os.path.islink(os.path.join(self.control, "rcpthosts")))

        p = as_user(AGENT_USER, "echo ':evil.test' > %s/smtproutes" % self.control)
        self.assertIn("Permission denied", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.control, "smtproutes")))
        # Through remoted's link: the file is remoted's user's, not the agent's.
        p = as_user(AGENT_USER, "echo 'x none' > %s/tlspolicy" % self.control)
        self.assertIn("Permission denied", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.lib, "remoted", "tlspolicy")))

    def test_confine_refuses_what_it_cannot_do_safely(self):
        rc, out, err = ctl("confine", "--daemon", "qtls-remoted", "--qmail-home", self.home.path,
                           "--policy-dir", os.path.join(self.control, "qtls"),
                           "--owner", "daemon")
        self.assertEqual(rc, 4)
        self.assertIn("--policy-dir must be outside", err)
        rc, out, err = self.confine("qtls-remoted", pwd.getpwnam("root"))
        self.assertEqual(rc, 4)
        self.assertIn("--owner root would give the daemon root's files", err)
        os.symlink("/etc/elsewhere", os.path.join(self.control, "tlspolicy"))
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER)
        self.assertEqual(rc, 4)
        self.assertIn("tlspolicy is a symlink to /etc/elsewhere", err)
        # control/ writable by the daemon's user defeats the point: said, exit 8.
        os.unlink(os.path.join(self.control, "tlspolicy"))
        os.chown(self.control, REMOTED_USER.pw_uid, 0)
        rc, out, err = self.confine("qtls-remoted", REMOTED_USER)
        self.assertEqual(rc, 8, err)
        self.assertIn("is still writable by daemon", err)


if __name__ == "__main__":
    unittest.main()
