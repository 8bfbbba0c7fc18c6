"""What the boot tests share (test_systemd_boot.py): the package made from build/, the
setuid qmail-queue stand-in, a cached Debian 12 root provisioned as a qmail admin would
(qmail's users, /var/qmail, the .deb, confine, the shim), and BootCase, which boots it with
systemd-nspawn (nspawn_root.py) and drives it from outside."""
import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import nspawn_root
from harness import BUILD, SANITIZED

HERE = os.path.dirname(os.path.abspath(__file__))
STAND_IN = os.path.join(HERE, "setuid_qmail_queue.c")
BUILD_LOCK = "/tmp/qtls-build.lock"

# Sends one message with STARTTLS (certificate checked against the one made here), or holds an
# idle session open and reports what the server says when it stops. Runs inside, python3.
CLIENT = r'''
import json, smtplib, ssl, sys
mode, rcpt = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile="/root/cert.pem")
out = {}
try:
    if mode == "smtps":  # implicit TLS on 465
        s = smtplib.SMTP_SSL("127.0.0.1", 465, local_hostname="client.boot.test", timeout=30,
                             context=ctx)
        out["ehlo"] = s.ehlo()[0]
    else:
        s = smtplib.SMTP("127.0.0.1", 25, local_hostname="client.boot.test", timeout=30)
        out["ehlo"] = s.ehlo()[0]
        out["starttls_offered"] = s.has_extn("starttls")
        out["starttls"] = s.starttls(context=ctx)[0]
        s.ehlo()
    out["tls"] = s.sock.version()
    if mode == "idle":
        print(json.dumps(out), flush=True)
        s.sock.settimeout(90)
        out["at_stop"] = list(s.getreply())
        out["at_stop"][1] = out["at_stop"][1].decode()
    else:
        msg = ("From: a@client.test\r\nTo: %s\r\nSubject: %s\r\n\r\nhello from the boot test\r\n"
               % (rcpt, sys.argv[3]))
        refused = s.sendmail("a@client.test", [rcpt], msg)
        out["sent"] = not refused
        s.quit()
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out), flush=True)
'''

# qmail's users and groups (qmail's INSTALL.ids), its home, a certificate, the package, the
# policy confined and the shim swapped in: what an admin does once. Runs inside, as root.
PROVISION = r'''
groupadd nofiles
groupadd qmail
useradd -g nofiles -d /var/qmail/alias -s /usr/sbin/nologin alias
for u in qmaild qmaill qmailp; do useradd -g nofiles -d /var/qmail -s /usr/sbin/nologin $u; done
for u in qmailq qmailr qmails; do useradd -g qmail -d /var/qmail -s /usr/sbin/nologin $u; done
install -d -m 0755 /var/qmail /var/qmail/control /var/qmail/bin
install -d -m 0750 -o qmailq -g qmail /var/qmail/queue
install -o qmailq -g qmail -m 04711 /root/qmail-queue /var/qmail/bin/qmail-queue
printf '#!/bin/sh\necho "Zqmail-remote: qmail'"'"'s own, not the shim"\n' > /var/qmail/bin/qmail-remote
chmod 0711 /var/qmail/bin/qmail-remote
echo mx.boot.test > /var/qmail/control/me
echo boot.test > /var/qmail/control/rcpthosts
echo boot.test:127.0.0.1:25 > /var/qmail/control/smtproutes
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=mx.boot.test -addext subjectAltName=DNS:mx.boot.test,IP:127.0.0.1 \
  -keyout /root/key.pem -out /root/cert.pem 2>/dev/null
# qmail-tls: key and certificate in one file, qmaild's, 0640
cat /root/key.pem /root/cert.pem > /var/qmail/control/servercert.pem
chown qmaild:qmail /var/qmail/control/servercert.pem
chmod 0640 /var/qmail/control/servercert.pem
dpkg -i /root/qtls.deb
usermod -a -G qtlsadmin qmailr
useradd -G qtlsadmin -s /bin/sh postmaster
qtlsctl confine --daemon qtls-remoted --policy-dir /var/lib/qtls/policy/remoted --owner qmailr
qtlsctl confine --daemon qtls-smtpd --policy-dir /var/lib/qtls/policy/smtpd --owner qmaild
qtlsctl shim install --qmail-home /var/qmail
'''


def host(*cmd, timeout=600, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


def scratch(prefix):
    """A directory on the host for this run, removed at exit (kept with QTLS_KEEP=1)."""
    d = tempfile.mkdtemp(prefix=prefix)
    if not os.environ.get("QTLS_KEEP"):
        atexit.register(shutil.rmtree, d, True)
    return d


@functools.lru_cache(maxsize=None)
def package():
    """The .deb, made from build/ as test_package.py makes it, under the build lock (cpack
    builds its preinstall target: never while build/ is being rebuilt). QTLS_BOOT_DEB=FILE
    uses that .deb instead (a package made elsewhere, or to rerun without touching build/)."""
    if os.environ.get("QTLS_BOOT_DEB"):
        return os.environ["QTLS_BOOT_DEB"]
    out = scratch("qtls-boot-deb-")
    t0 = time.time()
    p = host("flock", BUILD_LOCK, "cpack", "-G", "DEB", "-B", out, cwd=BUILD)
    print("\npackage: cpack took %.1f s, waiting for %s included" % (time.time() - t0,
                                                                     BUILD_LOCK))
    if p.returncode != 0:
        raise AssertionError("cpack failed:\n" + (p.stdout + p.stderr)[-4000:])
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    if len(debs) != 1:
        raise AssertionError("cpack made %r" % debs)
    return os.path.join(out, debs[0])


@functools.lru_cache(maxsize=None)
def stand_in():
    out = os.path.join(scratch("qtls-boot-qq-"), "qmail-queue")
    p = host("cc", "-O2", "-o", out, STAND_IN)
    if p.returncode != 0:
        raise AssertionError("cc %s: %s" % (STAND_IN, p.stderr))
    return out


def prepared_root():
    """The cached root with everything the package depends on (or SkipTest with the reason)."""
    try:
        root = nspawn_root.ensure_root()
        deb = package()
        depends = host("dpkg-deb", "-f", deb, "Depends").stdout.strip()
        nspawn_root.ensure_packages(root, nspawn_root.dependency_names(depends))
    except nspawn_root.Unavailable as e:
        raise unittest.SkipTest(str(e))
    return root


def provision(c):
    shutil.copy(package(), c.path("/root/qtls.deb"))
    shutil.copy(stand_in(), c.path("/root/qmail-queue"))
    with open(c.path("/root/smtp_client.py"), "w") as f:
        f.write(CLIENT)
    p = c.sh(PROVISION)
    if p.returncode != 0:
        raise AssertionError("provisioning the container failed (exit %d):\n%s%s"
                             % (p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p.stdout + p.stderr


class BootCase(unittest.TestCase):
    """One booted, provisioned container for the whole class; helpers to drive it."""
    c = None

    @classmethod
    def setUpClass(cls):
        if SANITIZED:
            raise unittest.SkipTest("the package is made from the release build (build/), "
                                    "not build-asan/")
        root = prepared_root()
        t0 = time.time()
        cls.c = nspawn_root.Container(root)
        cls.c.__enter__()
        booted = time.time()
        try:
            cls.provision_log = provision(cls.c)
        except BaseException:
            cls.c.stop()
            raise
        print("\n%s: booted (%s) in %.1f s, qmail and the package set up in %.1f s"
              % (cls.__name__, cls.c.system_state, booted - t0, time.time() - booted))
        cls.ids = {}
        for name in ("qmaild", "qmailq", "qmailr", "qmaill", "root"):
            cls.ids[name] = int(cls.c.run("id", "-u", name, check=True).stdout)
        for name in ("nofiles", "qmail", "qtlsadmin"):
            cls.ids[name] = int(cls.c.run("getent", "group", name, check=True)
                                .stdout.split(":")[2])

    @classmethod
    def tearDownClass(cls):
        if cls.c:
            cls.c.stop()

    # -- reading the container --
    def show(self, unit, *props):
        p = self.c.run("systemctl", "show", "-p", ",".join(props), unit, check=True)
        return dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)

    def journal(self, *units, lines=60):
        cmd = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines)]
        for u in units:
            cmd += ["-u", u]
        return self.c.run(*cmd).stdout

    def unit_log(self, unit):
        """The daemon's own lines (stderr, to the journal) since boot."""
        return self.c.run("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def stat(self, path):
        """(owner, group, octal mode, type) of a path inside."""
        p = self.c.run("stat", "-c", "%U %G %a %F", path)
        return tuple(p.stdout.strip().split(" ", 3)) if p.returncode == 0 else None

    def status(self, pid):
        p = self.c.run("cat", "/proc/%s/status" % pid, check=True)
        return dict((k, v.strip()) for k, v in
                    (l.split(":", 1) for l in p.stdout.splitlines() if ":" in l))

    def wait(self, predicate, timeout, what, detail=lambda: ""):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        self.fail("timed out after %ss waiting for %s\n%s" % (timeout, what, detail()))

    # -- doing things inside --
    def send(self, rcpt, subject, mode="send"):
        p = self.c.run("python3", "/root/smtp_client.py", mode, rcpt, subject, timeout=90)
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            self.fail("smtp client: %s %s" % (p.stdout, p.stderr))

    def queued(self):
        """{path: owner} of the messages the setuid qmail-queue wrote."""
        p = self.c.run("sh", "-c", "cd /var/qmail/queue && stat -c '%U %n' *.msg 2>/dev/null")
        return {l.split(" ", 1)[1]: l.split(" ", 1)[0] for l in p.stdout.splitlines() if " " in l}

    def queued_with(self, text):
        for name, owner in self.queued().items():
            body = self.c.run("cat", "/var/qmail/queue/" + name).stdout
            if text in body:
                return name, owner, body
        return None

    def shim(self, rcpt, body):
        """qmail-remote as qmail-rspawn runs it: as qmailr, message on stdin."""
        p = self.c.run("setpriv", "--reuid=qmailr", "--regid=qmail", "--init-groups",
                       "/var/qmail/bin/qmail-remote", rcpt.split("@")[1], "a@client.test", rcpt,
                       input=body.encode(), timeout=150)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def need(self, unit, journal_units=None):
        """The unit active (started if it is not); a failure carries the journal."""
        if self.show(unit, "ActiveState")["ActiveState"] == "active":
            return
        self.c.run("systemctl", "reset-failed", unit)
        p = self.c.run("systemctl", "start", unit, timeout=150)
        st = self.show(unit, "ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")
        if p.returncode != 0 or st["ActiveState"] != "active":
            self.fail("%s did not start under systemd (systemctl start: exit %d %s; %s)\n"
                      "journal:\n%s" % (unit, p.returncode, p.stderr.strip(), st,
                                        self.journal(*(journal_units or [unit]))))
