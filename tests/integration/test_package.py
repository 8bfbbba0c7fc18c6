"""The Debian package: built by CPack from build/, checked by lintian, installed with dpkg -i
on this machine, its programs run, qmail's qmail-remote swapped and put back with
`qtlsctl shim`, then purged, leaving nothing behind (docs/operations.md, "Install")."""
import grp
import os
import subprocess
import tempfile
import unittest

from harness import BUILD, SANITIZED


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=300, **kw)


@unittest.skipIf(SANITIZED, "the package is made from the release build (build/), not build-asan/")
class PackageTest(unittest.TestCase):
    def setUp(self):
        if run("dpkg", "-s", "qtls").returncode == 0:
            run("dpkg", "--purge", "qtls")
        self.out = tempfile.mkdtemp(prefix="qtls-deb-")
        p = run("cpack", "-G", "DEB", "-B", self.out, cwd=BUILD)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        debs = [f for f in os.listdir(self.out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, debs)
        self.deb = os.path.join(self.out, debs[0])

    def tearDown(self):
        run("dpkg", "--purge", "qtls")

    def test_lintian_install_run_purge(self):
        lint = run("lintian", self.deb)
        print("\nlintian:\n" + lint.stdout + lint.stderr)
        errors = [l for l in lint.stdout.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [])
        files = [l.split()[-1].lstrip(".") for l in run("dpkg-deb", "-c", self.deb).stdout
                 .splitlines() if not l.startswith("d")]
        self.assertIn("/usr/sbin/qtls-remoted", files)
        self.assertIn("/usr/lib/qtls/qtls-remote", files)
        self.assertIn("/lib/systemd/system/qtls-remoted.service", files)
        self.assertIn("/usr/share/man/man8/qtls-rspawn.8.gz", files)
        self.assertIn("/usr/share/bash-completion/completions/qtlsctl", files)

        p = run("dpkg", "-i", self.deb)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for prog in ("/usr/sbin/qtls-remoted", "/usr/sbin/qtls-smtpd", "/usr/bin/qtlsctl",
                     "/usr/lib/qtls/qtls-remote", "/usr/lib/qtls/qtls-rspawn"):
            v = run(prog, "--version")
            self.assertEqual(v.returncode, 0, prog)
            self.assertRegex(v.stdout, r"^qtls[-a-z]* \d+\.\d+\.\d+\n$")
        grp.getgrnam("qtlsadmin")  # made by postinst
        self.assertTrue(os.path.isdir("/var/lib/qtls"))
        # Nothing enabled or started.
        self.assertFalse(os.path.exists("/etc/systemd/system/multi-user.target.wants/"
                                        "qtls-remoted.service"))
        # The swap, both ways, from the installed copy.
        home = tempfile.mkdtemp(prefix="qtls-qmail-")
        os.makedirs(os.path.join(home, "bin"))
        with open(os.path.join(home, "bin", "qmail-remote"), "w") as f:
            f.write("#!/bin/sh\necho qmail's own\n")
        p = run("qtlsctl", "shim", "install", "--qmail-home", home)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(run(os.path.join(home, "bin", "qmail-remote"), "--version").stdout,
                         run("/usr/lib/qtls/qtls-remote", "--version").stdout)
        self.assertIn("already", run("qtlsctl", "shim", "install", "--qmail-home", home).stdout)
        run("qtlsctl", "shim", "uninstall", "--qmail-home", home)
        with open(os.path.join(home, "bin", "qmail-remote")) as f:
            self.assertIn("qmail's own", f.read())

        p = run("dpkg", "--purge", "qtls")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        left = [f for f in files if os.path.lexists(f)]
        self.assertEqual(left, [])
        self.assertFalse(os.path.exists("/var/lib/qtls"))
        with self.assertRaises(KeyError):
            grp.getgrnam("qtlsadmin")


if __name__ == "__main__":
    unittest.main()
