"""The daemontools services in deploy/daemontools, run the qmail way: svscan over a service
directory, supervise for each daemon and its log/run (multilog). Copies of the shipped
scripts, with only paths, users and ports changed for this machine, are started, reloaded with
`svc -h` and stopped with `svc -d`; the daemons' own lines are read back from multilog's
./main/current."""
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, QmailHome, free_port, wait_for

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                      "daemontools")
FAKEQ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qmail_queue.py")
USER = "nobody"  # plays qmailr, qmaild and qmaill


class DaemontoolsTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="qtls-svc-")
        os.chmod(self.root, 0o755)
        self.home = QmailHome(os.path.join(self.root, "qmail"))
        self.home.write("me", "mx.svc.test\n")
        self.home.write("rcpthosts", "svc.test\n")
        self.run_dir = os.path.join(self.root, "run")
        self.state = os.path.join(self.root, "state")
        self.services = os.path.join(self.root, "service")
        os.makedirs(self.services)
        self.queue_dir = os.path.join(self.root, "queue")
        os.makedirs(self.queue_dir)
        os.chmod(self.queue_dir, 0o777)
        self.smtp_port = free_port("127.0.0.1")
        self.svscan = None

    def tearDown(self):
        if self.svscan:
            for name in os.listdir(self.services):
                subprocess.run(["svc", "-dx", os.path.join(self.services, name),
                                os.path.join(self.services, name, "log")], check=False)
            time.sleep(1)
            self.svscan.send_signal(signal.SIGTERM)
            self.svscan.wait(10)
        subprocess.run(["pkill", "-f", self.root], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def install(self, name):
        """deploy/daemontools/<name> copied in, with this machine's paths, users and ports."""
        dest = os.path.join(self.services, name)
        shutil.copytree(os.path.join(DEPLOY, name), dest)
        replace = [("/usr/sbin/qtls-remoted",
                    os.path.join(BUILD, "services", "remoted", "qtls-remoted")),
                   ("/usr/sbin/qtls-smtpd", os.path.join(BUILD, "agent", "qtls-smtpd")),
                   ("/var/qmail", self.home.path), ("/run/qtls", self.run_dir),
                   ("/var/lib/qtls", self.state), ("qmailr", USER), ("qmaild", USER),
                   ("qmaill", USER), ("0.0.0.0:25 ", "127.0.0.1:%d " % self.smtp_port),
                   ("--listen 0.0.0.0:465,tls", ""),
                   ("--admin-listen unix:", "--metrics-listen 127.0.0.1:0 --admin-listen unix:")]
        if name == "qtls-smtpd":
            replace.append(("--user %s" % USER, "--user %s --qmail-queue %s" % (USER, FAKEQ)))
        for script in ("run", "log/run"):
            path = os.path.join(dest, script)
            with open(path) as f:
                text = f.read()
            for a, b in replace:
                text = text.replace(a, b)
            if name == "qtls-smtpd" and script == "run":
                text = text.replace("exec 2>&1", "exec 2>&1\nexport FAKEQ_DIR=%s" % self.queue_dir)
            with open(path, "w") as f:
                f.write(text)
        os.makedirs(os.path.join(dest, "log", "main"))
        nobody = pwd.getpwnam(USER)
        os.chown(os.path.join(dest, "log", "main"), nobody.pw_uid, nobody.pw_gid)
        return dest

    def log(self, service):
        try:
            with open(os.path.join(service, "log", "main", "current")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def svstat(self, service):
        return subprocess.run(["svstat", service], capture_output=True, text=True).stdout

    def test_both_services_start_reload_and_stop_under_supervise(self):
        remoted = self.install("qtls-remoted")
        smtpd = self.install("qtls-smtpd")
        self.svscan = subprocess.Popen(["svscan", self.services], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        for svc, started in ((remoted, "qtls-remoted started"), (smtpd, "qtls-smtpd started")):
            wait_for(lambda: started in self.log(svc), timeout=30, what=started)
            self.assertRegex(self.svstat(svc), r": up \(pid \d+\)")
            # multilog's TAI64N stamp on every line.
            line = [l for l in self.log(svc).splitlines() if started in l][0]
            self.assertRegex(line, r"^@4[0-9a-f]{23} ")
        # It runs as the service's user, not root.
        pid = int(re.search(r"pid (\d+)", self.svstat(remoted)).group(1))
        with open("/proc/%d/status" % pid) as f:
            uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
        self.assertEqual(uid, pwd.getpwnam(USER).pw_uid)
        # The agent takes mail.
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.smtp_port, "--from",
                            "a@b.test", "--to", "u@svc.test", "--helo", "client.test"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # svc -h: a reload, seen in the log.
        self.home.write("tlspolicy", "svc.test encrypt\n")
        subprocess.run(["svc", "-h", remoted], check=True)
        wait_for(lambda: "reload: control files loaded, generation 2" in self.log(remoted),
                 what="remoted reload")
        subprocess.run(["svc", "-h", smtpd], check=True)
        wait_for(lambda: "reload" in self.log(smtpd).split("qtls-smtpd started", 1)[1],
                 what="smtpd reload")
        # svc -d: stopped, and it stays down.
        for svc, stopped in ((remoted, "qtls-remoted stopped"), (smtpd, "qtls-smtpd stopped")):
            subprocess.run(["svc", "-d", svc], check=True)
            wait_for(lambda: stopped in self.log(svc), timeout=30, what=stopped)
            wait_for(lambda: ": down " in self.svstat(svc), what="svstat down")


if __name__ == "__main__":
    unittest.main()
