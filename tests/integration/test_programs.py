"""Every program says its version, qtlsctl explains each command, and each program's man page
(docs/man/) names every flag its --help lists and passes `mandoc -T lint`."""
import glob
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


MAN = os.path.join(REPO, "docs", "man")
SRC = os.path.join(REPO, "services")
FLAG_SOURCES = {
    "qtls-remoted": ["remoted/remoted_flags.cc", "remoted/conn_flags.h", "core/daemon/skeleton.cc",
                     "core/admin/admin_flags.h", "core/fleet/fleet_flags.h"],
    "qtls-smtpd": ["../agent/smtpd_flags.cc", "core/daemon/skeleton.cc", "core/admin/admin_flags.h",
                   "core/fleet/fleet_flags.h"],
    "qtlsctl": ["ctl/*.cc"],
    "qtls-remote": ["shim/qtls_remote.cc"],
    "qtls-rspawn": ["shim/qtls_rspawn.cc"],
}


def accepted_flags(program):
    """Every flag the program's sources compare an argument with: string literals "--..."."""
    flags = set()
    for pattern in FLAG_SOURCES[program]:
        for path in glob.glob(os.path.join(SRC, pattern)):
            with open(path) as f:
                flags.update(re.findall(r'"(--[a-z0-9-]+)"', f.read()))
    return flags


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

    def test_every_accepted_flag_is_in_the_man_page(self):
        for program in PROGRAMS:
            page = os.path.join(MAN, program + ".8")
            with open(page) as f:
                text = f.read()
            flags = accepted_flags(program)
            self.assertIn("--version", flags, program)
            missing = sorted(f for f in flags if f.replace("-", "\\-") not in text)
            self.assertEqual(missing, [], "%s: flags missing from %s" % (program, page))

    def test_man_pages_pass_mandoc_lint(self):
        pages = sorted(glob.glob(os.path.join(MAN, "*.[0-9]")))
        self.assertEqual([os.path.basename(p) for p in pages],
                         ["qtls-remote.8", "qtls-remoted.8", "qtls-rspawn.8", "qtls-smtpd.8",
                          "qtls-tlspolicy.5", "qtlsctl.8"])
        for page in pages:
            p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page],
                               capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), page)

    def complete(self, line):
        """What bash completion offers for `line` (the cursor at its end)."""
        words = line.split(" ")
        script = ("source /usr/share/bash-completion/bash_completion; source %s; "
                  "COMP_LINE=%s; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(%s); COMP_CWORD=%d; "
                  "_qtlsctl; echo \"${COMPREPLY[*]}\"" % (
                      os.path.join(REPO, "deploy", "bash-completion", "qtlsctl"),
                      "'%s'" % line, " ".join("'%s'" % w for w in words), len(words) - 1))
        p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.stderr, "")
        return p.stdout.split()

    def test_bash_completion(self):
        self.assertEqual(self.complete("qtlsctl po"), ["policy"])
        self.assertEqual(self.complete("qtlsctl policy "), ["get", "diff", "apply", "rollback",
                                                            "resolve", "--help"])
        self.assertEqual(self.complete("qtlsctl rollout start --component "), ["remote", "smtpd"])
        self.assertEqual(self.complete("qtlsctl --target unix:///x shim "),
                         ["install", "uninstall", "--help"])
        self.assertEqual(self.complete("qtlsctl fleet a"), ["adopt"])
        self.assertEqual(self.complete("qtlsctl fleet p"), ["prune"])
        self.assertEqual(self.complete("qtlsctl rollout w"), ["watch"])
        # Every command of the usage text can be completed.
        usage = subprocess.run([PROGRAMS["qtlsctl"], "--help"], capture_output=True,
                               text=True).stdout
        commands = set(re.findall(r"^  ([a-z]+) ", usage, re.M)) - {"and"}
        offered = set(self.complete("qtlsctl "))
        self.assertEqual(commands - offered, set())


if __name__ == "__main__":
    unittest.main()
