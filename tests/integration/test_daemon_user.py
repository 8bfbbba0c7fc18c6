"""Who the daemons run as: started as root they refuse to run without --user, and with it they
take over their state directory (files an earlier root run left there included) and drop to
that user."""
import os
import pwd
import shutil
import subprocess
import tempfile
import unittest

from harness import REMOTED, QmailHome, Remoted
from smtpd_harness import FAKEQ, SMTPD

NOBODY = pwd.getpwnam("nobody")


class DaemonUserTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="qtls-user-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.home = QmailHome(self.dir)
        for d in (self.home.path, self.home.control):
            os.chmod(d, 0o755)

    def test_root_without_user_is_refused(self):
        for cmd in ([REMOTED, "--qmail-home", self.home.path, "--allow-user", "0", "--socket",
                     os.path.join(self.dir, "r.sock"), "--state-dir",
                     os.path.join(self.dir, "st1"), "--metrics-listen", "none",
                     "--admin-listen", "none"],
                    [SMTPD, "--qmail-home", self.home.path, "--qmail-queue", FAKEQ, "--listen",
                     "127.0.0.1:0", "--state-dir", os.path.join(self.dir, "st2"),
                     "--metrics-listen", "none", "--admin-listen", "none"]):
            with self.subTest(program=os.path.basename(cmd[0])):
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
                self.assertEqual(p.returncode, 111)
                self.assertIn("fatal: refusing to run as root without --user", p.stderr)
                self.assertFalse(os.path.exists(cmd[cmd.index("--state-dir") + 1]),
                                 "nothing may be made as root before the refusal")

    def test_user_takes_over_root_files_in_the_state_dir(self):
        # An earlier run as root left 0600 root files; --user nobody must own them all.
        run = os.path.join(self.dir, "run")
        os.makedirs(run)
        os.chown(run, NOBODY.pw_uid, NOBODY.pw_gid)
        state = os.path.join(run, "remoted-state")
        first = Remoted(self.home, run, args=["--user", "root", "--state-dir", state,
                                              "--admin-listen", "none"])
        first.stop()
        owners = {os.stat(os.path.join(d, f)).st_uid for d, _, fs in os.walk(state) for f in fs}
        self.assertEqual(owners, {0})
        second = Remoted(self.home, run, allow=str(NOBODY.pw_uid),
                         args=["--user", "nobody", "--state-dir", state, "--admin-listen", "none"])
        self.addCleanup(second.stop)
        with open("/proc/%d/status" % second.proc.pid) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        self.assertEqual(uids, [str(NOBODY.pw_uid)] * 4)
        owners = {os.stat(os.path.join(d, f)).st_uid for d, _, fs in os.walk(state) for f in fs}
        self.assertEqual(owners, {NOBODY.pw_uid})


if __name__ == "__main__":
    unittest.main()
