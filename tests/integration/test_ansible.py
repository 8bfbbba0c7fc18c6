"""The Ansible role (deploy/ansible) against this machine: check mode, then for real, then
again with no changes. It installs the package, writes the daemon's options, swaps qmail's
qmail-remote for the shim (reversibly) and links the daemontools service in."""
import os
import re
import subprocess
import tempfile
import unittest

from harness import BUILD, SANITIZED

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "ansible",
                    "site.yml")


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, **kw)


@unittest.skipIf(SANITIZED, "the package is made from the release build (build/), not build-asan/")
class AnsibleTest(unittest.TestCase):
    def setUp(self):
        run("dpkg", "--purge", "qtls")
        out = tempfile.mkdtemp(prefix="qtls-deb-")
        p = run("cpack", "-G", "DEB", "-B", out, cwd=BUILD)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.deb = os.path.join(out, [f for f in os.listdir(out) if f.endswith(".deb")][0])
        self.home = tempfile.mkdtemp(prefix="qtls-qmail-")
        os.makedirs(os.path.join(self.home, "bin"))
        with open(os.path.join(self.home, "bin", "qmail-remote"), "w") as f:
            f.write("#!/bin/sh\necho qmail's own\n")
        os.chmod(os.path.join(self.home, "bin", "qmail-remote"), 0o711)
        self.services = tempfile.mkdtemp(prefix="qtls-service-")

    def tearDown(self):
        if os.path.exists("/usr/bin/qtlsctl"):
            run("qtlsctl", "shim", "uninstall", "--qmail-home", self.home)
        run("dpkg", "--purge", "qtls")
        for f in ("/etc/default/qtls-remoted", "/var/cache/qtls.deb"):
            if os.path.exists(f):
                os.unlink(f)

    def playbook(self, *extra):
        p = run("ansible-playbook", "-i", "localhost,", "-c", "local", SITE,
                "-e", "qtls_deb=%s qmail_home=%s qtls_supervisor=daemontools "
                      "qtls_service_dir=%s" % (self.deb, self.home, self.services),
                "-e", '{"qtls_options": {"qtls-remoted": "--threads 4"}}', *extra,
                env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3"))
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-2000:])
        recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0",
                          p.stdout)
        self.assertIsNotNone(recap, p.stdout[-2000:])
        return int(recap.group(2))

    def test_check_mode_then_real_then_no_changes(self):
        self.playbook("--check")
        self.assertFalse(os.path.exists("/usr/sbin/qtls-remoted"))  # check mode changed nothing
        self.assertGreater(self.playbook(), 0)
        # What it did: the package, the options, the swap, the service.
        self.assertEqual(run("/usr/sbin/qtls-remoted", "--version").returncode, 0)
        with open("/etc/default/qtls-remoted") as f:
            self.assertIn('QTLS_REMOTED_OPTS="--threads 4"', f.read())
        self.assertEqual(run(os.path.join(self.home, "bin", "qmail-remote"), "--version").stdout,
                         run("/usr/lib/qtls/qtls-remote", "--version").stdout)
        self.assertTrue(os.path.exists(os.path.join(self.home, "bin", "qmail-remote.orig")))
        link = os.path.join(self.services, "qtls-remoted")
        self.assertEqual(os.readlink(link), os.path.join(self.home, "supervise", "qtls-remoted"))
        with open(os.path.join(link, "run")) as f:
            self.assertIn("--qmail-home %s " % self.home, f.read())
        # Again: nothing to do.
        self.assertEqual(self.playbook(), 0)


if __name__ == "__main__":
    unittest.main()
