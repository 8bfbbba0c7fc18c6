"""The package under a real systemd (issue 18): a Debian 12 root (nspawn_root.py: debootstrap
once, cached in /var/cache/qtls-test) booted with `systemd-nspawn -b` on a throwaway overlay,
with a network namespace of its own. Inside, as a qmail admin would: qmail's users and groups,
/var/qmail with control/ (servercert.pem made here, qmaild's, 0640), queue/ and a setuid
qmailq qmail-queue (setuid_qmail_queue.c: Debian 12 has no qmail package), the .deb made from
build/ and installed with dpkg -i, `qtlsctl confine` for both daemons and `qtlsctl shim
install`. Then, with the units exactly as shipped:

- both units start, and their processes carry the hardening (seccomp, bounding set, UMask,
  namespaces, read-only control/, the state directories);
- the agent takes a message with STARTTLS and the setuid qmail-queue puts it in queue/ as qmailq;
- qmail-remote (the shim, run as qmailr) -> qtls-remoted -> 127.0.0.1:25 (smtproutes) ->
  qtls-smtpd -> qmail-queue: `K`;
- qtls-remoted's credentials cannot read the agent's key;
- implicit TLS on 465 from qtls-smtpd-smtps.socket;
- `systemctl reload` makes a new generation of each, in the journal and in the unit's status;
  a first hand edit through a link `confine` left applies by itself;
- the units share /run/qtls: after each reload and restart of either, both admin sockets
  keep their owner and group qtlsadmin, and the shim still delivers;
- the watchdog is fed (WatchdogTimestamp moves);
- `systemd-analyze security` on the live units is within test_systemd.py's thresholds;
- `systemctl stop` drains and exits cleanly.

The daemontools services (/usr/share/qtls/daemontools from the package) run the same
scenario under svscan in a second container.

Skipped, with the reason, only when this machine cannot do it: not root, no systemd-nspawn or
debootstrap, the Debian mirror unreachable while the root is built. QTLS_KEEP=1 keeps each
container's overlay (its upper directory holds every file the test changed); QTLS_BOOT_DEB=FILE
installs that package instead of making one from build/."""
import json
import re
import subprocess
import unittest

from boot_case import BootCase

# test_systemd.py's thresholds (systemd 252's scale), here on the live units.
THRESHOLD = {"qtls-remoted.service": 2.5, "qtls-smtpd.service": 4.5}
# The bounding set the agent's unit gives: CAP_CHOWN(0) CAP_SETGID(6) CAP_SETUID(7)
# CAP_SYS_ADMIN(21).
SMTPD_CAPBND = (1 << 0) | (1 << 6) | (1 << 7) | (1 << 21)


class SystemdBootTest(BootCase):
    """The shipped units under systemd 252, in order (each test starts what it needs)."""
    REMOTED = "qtls-remoted.service"
    SMTPD = "qtls-smtpd.service"
    SMTPD_UNITS = ["qtls-smtpd.service", "qtls-smtpd.socket"]

    def need_remoted(self):
        self.need(self.REMOTED)

    def need_smtpd(self):
        self.need(self.SMTPD, self.SMTPD_UNITS)

    def main_status(self, unit):
        pid = self.show(unit, "MainPID")["MainPID"]
        self.assertNotEqual(pid, "0", unit)
        return pid, self.status(pid)

    def mount_options(self, pid, path):
        """The options of the mount `path` is on, in the process's mount namespace."""
        p = self.c.run("nsenter", "-t", str(pid), "-m", "--", "findmnt", "-n", "-o", "OPTIONS",
                       "-T", path, check=True)
        return p.stdout.strip().split(",")

    def test_1_remoted_starts_with_its_hardening(self):
        self.need_remoted()
        pid, st = self.main_status(self.REMOTED)
        unit = self.show(self.REMOTED, "User", "Group")  # as shipped: qmailr, qmail
        gid = self.c.run("getent", "group", unit["Group"], check=True).stdout.split(":")[2]
        self.assertEqual(unit["User"], "qmailr")
        self.assertEqual(st["Uid"].split(), [str(self.ids["qmailr"])] * 4, st)
        self.assertEqual(st["Gid"].split(), [gid] * 4, st)
        self.assertIn(str(self.ids["qtlsadmin"]), st["Groups"].split())
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Seccomp"], "2")
        self.assertEqual(int(st["CapBnd"], 16), 0)
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(st["Umask"], "0077")
        self.assertNotEqual(self.c.run("readlink", "/proc/%s/ns/mnt" % pid).stdout,
                            self.c.run("readlink", "/proc/1/ns/mnt").stdout)
        self.assertIn("ro", self.mount_options(pid, "/usr"), "ProtectSystem=strict")
        self.assertIn("ro", self.mount_options(pid, "/var/qmail/control"), "ReadOnlyPaths=")
        self.assertIn("rw", self.mount_options(pid, "/run/qtls"), "RuntimeDirectory=")
        self.assertIn("rw", self.mount_options(pid, "/var/lib/qtls/remoted"), "StateDirectory=")
        self.assertIn("rw", self.mount_options(pid, "/var/lib/qtls/policy/remoted"),
                      "ReadWritePaths=")
        self.assertEqual(self.stat("/var/lib/qtls/remoted")[:3],
                         ("qmailr", unit["Group"], "700"))
        self.assertIn("qtls-remoted started", self.unit_log(self.REMOTED))
        self.assertEqual(self.stat("/run/qtls/remoted.sock")[3], "socket")

    def test_1b_remoted_cannot_read_the_agents_private_key(self):
        # The outbound daemon parses replies from any server on the Internet; with its
        # credentials (the unit's User=, Group=, SupplementaryGroups=) the agent's key
        # (control/servercert.pem, confined to qmaild) must be out of reach.
        self.need_remoted()
        pid, st = self.main_status(self.REMOTED)
        groups = ",".join(st["Groups"].split()) or "-"
        p = self.c.run("nsenter", "-t", pid, "-m", "--", "setpriv",
                       "--reuid=" + st["Uid"].split()[0], "--regid=" + st["Gid"].split()[0],
                       "--groups=" + groups if groups != "-" else "--clear-groups",
                       "head", "-c", "27", "/var/qmail/control/servercert.pem")
        self.assertNotEqual(p.returncode, 0, "qtls-remoted's credentials (uid %s gid %s groups "
                            "%s) read the agent's private key: %r; %s" % (
                                st["Uid"].split()[0], st["Gid"].split()[0], st["Groups"],
                                p.stdout, self.c.run("sh", "-c", "ls -lL /var/qmail/control/"
                                                     "servercert.pem").stdout.strip()))

    def test_2_smtpd_starts_with_its_hardening(self):
        self.need_smtpd()
        pid, st = self.main_status(self.SMTPD)
        d = self.ids["qmaild"]
        self.assertEqual(st["Uid"].split(), [str(d)] * 4, st)
        self.assertEqual(st["Seccomp"], "2")
        self.assertEqual(st["NoNewPrivs"], "0", "a setuid qmail-queue needs no_new_privs off")
        self.assertEqual(int(st["CapBnd"], 16), SMTPD_CAPBND)
        self.assertEqual(int(st["CapEff"], 16), 0, "no capability left after the drop")
        self.assertEqual(int(st["CapPrm"], 16), 0)
        self.assertEqual(st["Umask"], "0077")
        self.assertIn("ro", self.mount_options(pid, "/usr"), "ProtectSystem=strict")
        self.assertIn("ro", self.mount_options(pid, "/var/qmail/control"), "ReadOnlyPaths=")
        self.assertIn("rw", self.mount_options(pid, "/var/qmail/queue"), "ReadWritePaths=")
        self.assertIn("rw", self.mount_options(pid, "/var/lib/qtls/smtpd"), "StateDirectory=")
        self.assertEqual(self.stat("/var/lib/qtls/smtpd")[2], "700")
        log = self.unit_log(self.SMTPD)
        self.assertIn("qtls-smtpd started", log)
        self.assertRegex(log, r"starttls=yes")

    def test_3_smtpd_takes_mail_with_starttls_into_the_setuid_queue(self):
        self.need_smtpd()
        r = self.send("u@boot.test", "direct-starttls")
        self.assertTrue(r.get("sent"), "%s\njournal:\n%s" % (r, self.journal(*self.SMTPD_UNITS)))
        self.assertEqual(r["starttls"], 220)
        self.assertIn(r["tls"], ("TLSv1.2", "TLSv1.3"))
        got = self.queued_with("Subject: direct-starttls")
        self.assertIsNotNone(got, "no message in queue/: %s" % self.queued())
        name, owner, body = got
        self.assertEqual(owner, "qmailq", "qmail-queue's setuid bit")
        self.assertRegex(body, r"Received: from ")
        # Not in rcpthosts: refused as qmail-smtpd does.
        r = self.send("u@elsewhere.test", "not-ours")
        self.assertFalse(r.get("sent"), r)
        self.assertIn("553", r.get("error", ""))

    def test_3b_implicit_tls_on_465_from_the_second_socket_unit(self):
        # systemd refuses to start a socket unit while its service runs ("Socket service
        # qtls-smtpd.service already active, refusing"), and the agent takes the sockets it
        # is given when it starts: stop it, start the socket, start it.
        self.c.run("systemctl", "stop", self.SMTPD, timeout=150, check=True)
        self.need("qtls-smtpd-smtps.socket")
        self.need_smtpd()
        self.assertRegex(self.unit_log(self.SMTPD).rsplit("Starting", 1)[-1],
                         r"qtls-smtpd started listen=\S*:465\(tls\)")
        self.assertRegex(self.unit_log(self.SMTPD).rsplit("Starting", 1)[-1],
                         r"qtls-smtpd started listen=\S*:::25\b")
        r = self.send("u@boot.test", "implicit-tls", mode="smtps")
        self.assertTrue(r.get("sent"), "%s\n%s" % (r, self.journal(*self.SMTPD_UNITS)))
        self.assertIn(r["tls"], ("TLSv1.2", "TLSv1.3"))
        self.assertIsNotNone(self.queued_with("Subject: implicit-tls"), self.queued())

    def test_4_shim_remoted_smtpd_queue_loop(self):
        self.need_remoted()
        self.need_smtpd()
        rc, out, err = self.shim("u@boot.test", "Subject: via-the-shim\n\nhello\n")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(^|\x00)K", "%r %s\njournal:\n%s" % (
            out, err, self.journal(self.REMOTED, self.SMTPD, lines=40)))
        got = self.queued_with("Subject: via-the-shim")
        self.assertIsNotNone(got, "delivered (K) but not in queue/: %s" % self.queued())
        self.assertEqual(got[1], "qmailq")
        # Both ends logged it as TLS.
        self.assertRegex(self.unit_log(self.REMOTED),
                         r"delivery id=\d+ .*domain=boot\.test .*tls=TLSv1\.[23]/.* status=K")
        self.assertRegex(self.unit_log(self.SMTPD), r"session client=127\.0\.0\.1 .*tls=TLSv1\.[23]/"
                                                    r".* accepted=1")

    SIGHUP_RELOAD = r"reload: control files.* loaded, generation (\d+) \(SIGHUP\)"

    def test_5_reload_applies_a_change(self):
        self.need_remoted()
        self.need_smtpd()
        # Hand edits of files control/ keeps (smtproutes is root's) and of one `confine`
        # moved (rcpthosts, through its link), then systemctl reload. The daemons also
        # watch control/ and may apply an edit by themselves first; the reload must still
        # go through the unit's ExecReload= and log its own line.
        # remoted: a route (smtproutes, not a policy file: no new generation by itself) and
        # a policy change (notlshosts/<host>, qmail-tls's "no TLS to this host"); smtpd: a
        # new rcpthosts line.
        self.c.sh("echo other.test:127.0.0.1:25 >> /var/qmail/control/smtproutes", check=True)
        self.c.sh("touch /var/qmail/control/notlshosts/nottls.test", check=True)
        self.c.sh("echo other.test >> /var/qmail/control/rcpthosts", check=True)
        for unit in (self.REMOTED, self.SMTPD):
            before = len(re.findall(self.SIGHUP_RELOAD, self.unit_log(unit)))
            p = self.c.run("systemctl", "reload", unit, timeout=60)
            self.assertEqual(p.returncode, 0, "%s: %s\n%s" % (unit, p.stderr,
                                                              self.journal(unit)))
            self.wait(lambda: len(re.findall(self.SIGHUP_RELOAD, self.unit_log(unit))) > before,
                      20, unit + " reload line", lambda: self.journal(unit))
            gen = re.findall(self.SIGHUP_RELOAD, self.unit_log(unit))[-1]
            self.assertGreaterEqual(int(gen), 2, self.journal(unit))
            self.wait(lambda: ("policy generation %s " % gen) in
                      self.show(unit, "StatusText")["StatusText"], 10, unit + " STATUS=")
            self.assertEqual(self.show(unit, "ActiveState")["ActiveState"], "active")
        r = self.send("u@other.test", "after-reload")
        self.assertTrue(r.get("sent"), r)
        rc, out, err = self.shim("u@other.test", "Subject: routed-after-reload\n\nhi\n")
        self.assertRegex(out, r"(^|\x00)K", "%r %s" % (out, err))
        self.assertRegex(self.unit_log(self.REMOTED),
                         r"delivery id=\d+ gen=[2-9]\d* .*domain=other\.test .*status=K")

    def test_5b_first_hand_edit_through_a_confined_link_applies_by_itself(self):
        # `qtlsctl confine` leaves control/tlspolicy a link to a file that does not exist
        # yet; a qmail-tls admin's first edit creates it through the link. The daemon watches
        # control/ and the directories confined links point into (docs/compatibility.md).
        self.need_remoted()
        self.assertFalse(self.c.run("test", "-e", "/var/qmail/control/tlspolicy").returncode
                         == 0, "tlspolicy exists already")
        # A daemon as it is after a start, before any reload.
        self.c.run("systemctl", "restart", self.REMOTED, timeout=150, check=True)
        before = self.unit_log(self.REMOTED).count("(inotify)")
        self.c.sh("echo 'boot.test encrypt' > /var/qmail/control/tlspolicy", check=True)
        self.wait(lambda: self.unit_log(self.REMOTED).count("(inotify)") > before, 10,
                  "qtls-remoted to apply control/tlspolicy, created through confine's link "
                  "(-> /var/lib/qtls/policy/remoted/tlspolicy), by itself",
                  lambda: "%s\n%s" % (self.c.run("ls", "-l", "/var/qmail/control/tlspolicy",
                                                  "/var/lib/qtls/policy/remoted").stdout,
                                       self.journal(self.REMOTED, lines=12)))
        self.assertRegex(self.unit_log(self.REMOTED), r"caller=inotify .*changes=\+tlspolicy")

    def admin_socket(self, unit):
        """The unix admin socket the daemon says it listens on (its last start)."""
        found = re.findall(r"admin listen=unix:(\S+)", self.unit_log(unit))
        self.assertTrue(found, unit + ": no admin socket in its log")
        return found[-1]

    def test_6_runtime_directory_after_each_reload_and_restart(self):
        # /run/qtls holds the shim socket and both admin sockets. systemd gives a unit's
        # RuntimeDirectory= (and StateDirectory=) to the unit's User=, recursively, whenever
        # the top is not already that user's, at every process it starts for the unit (a
        # reload's kill too). Each admin socket must stay its daemon's, group qtlsadmin 0660,
        # usable by a member of qtlsadmin, and never the other daemon's user's.
        self.need_remoted()
        self.need_smtpd()
        problems, seen = [], []
        owners = {self.REMOTED: "qmailr", self.SMTPD: "root"}
        for action, unit in (("reload", self.SMTPD), ("reload", self.REMOTED),
                             ("restart", self.SMTPD), ("restart", self.REMOTED)):
            p = self.c.run("systemctl", action, unit, timeout=150)
            self.assertEqual(p.returncode, 0, "systemctl %s %s: %s\n%s" % (
                action, unit, p.stderr, self.journal(unit)))
            self.need_remoted()
            self.need_smtpd()
            after = "after systemctl %s %s" % (action, unit)
            seen.append("%s: /run/qtls %s; %s" % (after, self.stat("/run/qtls")[:3], "; ".join(
                "%s %s" % (n, self.stat(n)[:3]) for n in
                sorted(self.c.run("sh", "-c", "ls -d /run/qtls/*").stdout.split()))))
            for daemon, owner in owners.items():
                sock = self.admin_socket(daemon)
                st = self.stat(sock)
                if st is None or st[:3] != (owner, "qtlsadmin", "660"):
                    problems.append("%s: %s is %s, not (%s, qtlsadmin, 660)"
                                    % (after, sock, st and st[:3], owner))
                h = self.c.run("setpriv", "--reuid=postmaster", "--regid=postmaster",
                               "--init-groups", "qtlsctl", "--target", "unix://" + sock,
                               "health", timeout=30)
                if "SERVING" not in h.stdout:
                    problems.append("%s: qtlsctl health on %s as a member of qtlsadmin: %s"
                                    % (after, sock, (h.stdout + h.stderr).strip()))
            rc, out, err = self.shim("u@boot.test", "Subject: after-%s\n\nhi\n" % action)
            if not re.search(r"(^|\x00)K", out):
                problems.append("%s: the shim got %r %s" % (after, out, err))
        if problems:
            self.fail("\n".join(["%d problem(s):" % len(problems)] + problems +
                                 ["what /run/qtls held:"] + seen))

    def test_7_watchdog_is_fed(self):
        self.need_remoted()
        self.need_smtpd()
        props = ("WatchdogUSec", "WatchdogTimestampMonotonic", "MainPID")
        first = {u: self.show(u, *props) for u in (self.REMOTED, self.SMTPD)}
        for unit, st in first.items():
            self.assertEqual(st["WatchdogUSec"], "30s", unit)
        # WATCHDOG=1 every half WatchdogSec (15 s) from the event loop: within that (plus
        # slack), each timestamp moves while the same process runs (no restart, no reload).
        def moved():
            now = {u: self.show(u, *props) for u in first}
            for u in first:
                self.assertEqual(now[u]["MainPID"], first[u]["MainPID"], u + " restarted")
            return all(now[u]["WatchdogTimestampMonotonic"] !=
                       first[u]["WatchdogTimestampMonotonic"] for u in first)
        self.wait(moved, 35, "WatchdogTimestamp to move", lambda: "%s -> %s" % (
            first, {u: self.show(u, *props) for u in first}))

    def test_8_security_exposure_of_the_live_units(self):
        self.need_remoted()
        self.need_smtpd()
        for unit, limit in THRESHOLD.items():
            p = self.c.run("systemd-analyze", "security", "--no-pager", unit)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
            self.assertIsNotNone(m, p.stdout + p.stderr)
            self.assertLessEqual(float(m.group(1)), limit, unit + "\n" + p.stdout)
            print("\n  live %s: %s" % (unit, m.group(0)), end="")

    def test_9_stop_drains_and_exits_cleanly(self):
        self.need_remoted()
        self.need_smtpd()
        # An idle session open while the agent stops: told 421 at once, not cut.
        idle = subprocess.Popen(["nsenter", "-t", str(self.c.pid), "-a", "--", "python3",
                                 "/root/smtp_client.py", "idle", "-"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = idle.stdout.readline()
        if '"starttls": 220' not in first:
            idle.kill()
            self.fail("the idle session did not get going: %r %s" % (first, idle.stderr.read()))
        for unit, stopped in ((self.SMTPD, "qtls-smtpd stopped"),
                              (self.REMOTED, "qtls-remoted stopped")):
            p = self.c.run("systemctl", "stop", unit, timeout=150)
            self.assertEqual(p.returncode, 0, p.stderr)
            st = self.show(unit, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
            log = self.unit_log(unit)
            self.assertEqual((st["ActiveState"], st["Result"], st["ExecMainStatus"]),
                             ("inactive", "success", "0"), "%s %s\n%s" % (unit, st,
                                                                        self.journal(unit)))
            self.assertIn("stopping: ", log.rsplit("started", 1)[-1])
            self.assertIn(stopped, log.rsplit("started", 1)[-1])
        out, err = idle.communicate(timeout=60)
        at_stop = json.loads(out.strip().splitlines()[-1]).get("at_stop")
        self.assertIsNotNone(at_stop, out + err)
        self.assertEqual(at_stop[0], 421, at_stop)
        self.c.run("systemctl", "stop", "qtls-smtpd.socket")


class DaemontoolsBootTest(BootCase):
    """/usr/share/qtls/daemontools as the package ships them, copied to
    /var/qmail/supervise and linked into /service, under svscan (started as a transient
    systemd service, as daemontools-run would). test_daemontools.py runs edited copies on the
    host with a fake qmail-queue as nobody; this is the shipped scripts with qmail's users."""

    def log(self, name):
        return self.c.run("cat", "/var/qmail/supervise/%s/log/main/current" % name).stdout

    def test_same_scenario_under_svscan(self):
        c = self.c
        self.assertEqual(self.stat("/usr/share/qtls/daemontools/qtls-remoted/run")[2], "755")
        c.sh("""
            install -d -m 0755 /var/qmail/supervise /service
            for s in qtls-remoted qtls-smtpd; do
              cp -a /usr/share/qtls/daemontools/$s /var/qmail/supervise/$s
              install -d -o qmaill -m 0755 /var/qmail/supervise/$s/log/main
              ln -s /var/qmail/supervise/$s /service/$s
            done
            systemd-run --unit=svscan --property=KillMode=mixed /usr/bin/svscan /service
        """, check=True)
        for name, started in (("qtls-remoted", "qtls-remoted started"),
                              ("qtls-smtpd", "qtls-smtpd started")):
            self.wait(lambda: started in self.log(name), 30, started,
                      lambda: "%s\nsvstat: %s" % (self.log(name), c.run(
                          "svstat", "/service/" + name).stdout))
        st = c.run("svstat", "/service/qtls-remoted", "/service/qtls-smtpd").stdout
        pids = re.findall(r"up \(pid (\d+)\)", st)
        self.assertEqual(len(pids), 2, st)
        self.assertEqual(self.status(pids[0])["Uid"].split()[0], str(self.ids["qmailr"]))
        self.assertEqual(self.status(pids[1])["Uid"].split()[0], str(self.ids["qmaild"]))
        r = self.send("u@boot.test", "svscan-direct")
        self.assertTrue(r.get("sent"), "%s\n%s" % (r, self.log("qtls-smtpd")))
        self.assertEqual(r["starttls"], 220)
        got = self.queued_with("Subject: svscan-direct")
        self.assertIsNotNone(got, self.queued())
        self.assertEqual(got[1], "qmailq")
        rc, out, err = self.shim("u@boot.test", "Subject: svscan-shim\n\nhello\n")
        self.assertRegex(out, r"(^|\x00)K", "%r %s\n%s" % (out, err, self.log("qtls-remoted")))
        self.assertIsNotNone(self.queued_with("Subject: svscan-shim"), self.queued())
        # svc -h: a new generation of each.
        c.sh("echo 'boot.test encrypt' > /var/qmail/control/tlspolicy", check=True)
        c.sh("echo other.test >> /var/qmail/control/rcpthosts", check=True)
        sighup = r"reload: control files.* loaded, generation (\d+) \(SIGHUP\)"
        for name in ("qtls-remoted", "qtls-smtpd"):
            c.run("svc", "-h", "/service/" + name, check=True)
            self.wait(lambda: re.search(sighup, self.log(name)), 20, name + " reload",
                      lambda: self.log(name))
            self.assertGreaterEqual(int(re.findall(sighup, self.log(name))[-1]), 2,
                                    self.log(name))
        self.assertTrue(self.send("u@other.test", "svscan-after-reload").get("sent"))
        # svc -d: drained and down.
        for name, stopped in (("qtls-smtpd", "qtls-smtpd stopped"),
                              ("qtls-remoted", "qtls-remoted stopped")):
            c.run("svc", "-d", "/service/" + name, check=True)
            self.wait(lambda: stopped in self.log(name), 30, stopped, lambda: self.log(name))
            self.wait(lambda: ": down " in c.run("svstat", "/service/" + name).stdout, 10,
                      name + " down")
        c.run("svc", "-dx", "/service/qtls-remoted", "/service/qtls-smtpd",
              "/service/qtls-remoted/log", "/service/qtls-smtpd/log")
        c.run("systemctl", "stop", "svscan.service")


if __name__ == "__main__":
    unittest.main()
