"""A Debian 12 root with a real systemd, booted with systemd-nspawn, for test_systemd_boot.py.

The root is made once with `debootstrap --variant=minbase` from the Debian mirror and kept
outside the checkout (QTLS_NSPAWN_CACHE, default /var/cache/qtls-test/bookworm-root); it is
made again when it is missing or its stamp names another ROOT_VERSION. Packages a .deb needs
(its Depends) are added to it when missing (`ensure_packages`). Each boot runs on an overlay
of it (lower: the cached root, upper: a throwaway directory), so the cached root stays as it
was built and a boot costs no copy.

    root = ensure_root()                      # raises Unavailable (a skip reason) or fails
    with Container(root) as c:                # booted, `systemctl is-system-running` settled
        c.run("systemctl", "start", "x")      # nsenter -t <its systemd> -a ...
        c.path("/etc/hostname")               # the same file, seen from the host

`python3 nspawn_root.py` builds (or checks) the cached root and prints its path and timing."""
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

CACHE = os.environ.get("QTLS_NSPAWN_CACHE", "/var/cache/qtls-test")
ROOT = os.path.join(CACHE, "bookworm-root")
STAMP = ".qtls-root-version"
MIRROR = os.environ.get("QTLS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("QTLS_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")
# Bump ROOT_VERSION whenever the list or the set-up below changes: cached roots are rebuilt.
ROOT_VERSION = "3"
INCLUDE = [
    # a booting systemd, and its bus for systemctl
    "systemd", "systemd-sysv", "dbus",
    # the qmail side: daemontools (svscan, supervise, multilog, setuidgid), openssl for the
    # certificate made at test time, python3 (smtplib with ssl) as the SMTP client
    "daemontools", "openssl", "python3", "adduser", "passwd", "procps",
    # what qtls links against (the .deb's shlibdeps; ensure_packages adds whatever is missing)
    "libssl3", "libc-ares2", "libgrpc++1.51", "libprotobuf32", "libabsl20220623",
    "libsystemd0", "libcpp-httplib0.11",
]
# Units a container does not need; masked so that the boot settles in a second or two.
MASK = ["systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
        "e2scrub_all.timer", "fstrim.timer", "man-db.timer", "dpkg-db-backup.timer",
        "systemd-networkd-wait-online.service", "getty@tty1.service",
        "console-getty.service", "systemd-logind.service"]


class Unavailable(Exception):
    """The reason this machine cannot boot a container: the test is skipped with it."""


def run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def check_host():
    if os.geteuid() != 0:
        raise Unavailable("needs root: debootstrap, mounts and systemd-nspawn")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            raise Unavailable("%s is missing (scripts/setup.sh installs systemd-container and "
                              "debootstrap)" % tool)


def mirror_reachable():
    url = MIRROR.rstrip("/") + "/dists/bookworm/InRelease"
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            r.read(64)
    except Exception as e:  # noqa: BLE001 - any reason is the skip reason
        raise Unavailable("the Debian mirror is unreachable, so the bookworm root cannot be "
                          "built: %s: %s" % (url, e))


def in_root(root, *cmd, timeout=900, network=True):
    """A command in the root without booting it (apt-get, dpkg-query): systemd-nspawn
    --pipe, sharing the host's network (for the mirror)."""
    argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe",
            "--resolv-conf=replace-host", "-D", root,
            "-E", "DEBIAN_FRONTEND=noninteractive", "-E", "LANG=C"]
    if not network:
        argv.append("--private-network")
    return run(argv + ["--"] + list(cmd), timeout=timeout, stdin=subprocess.DEVNULL)


def _ok(p, what):
    if p.returncode != 0:
        raise AssertionError("%s failed (exit %d):\n%s" % (what, p.returncode,
                                                          (p.stdout + p.stderr)[-4000:]))
    return p


def _stamp(root):
    try:
        with open(os.path.join(root, STAMP)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _build(root):
    tmp = root + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.time()
    _ok(run(["debootstrap", "--variant=minbase", "--include=" + ",".join(INCLUDE), "bookworm",
             tmp, MIRROR], timeout=1200), "debootstrap")
    t1 = time.time()
    with open(os.path.join(tmp, "etc", "apt", "sources.list"), "w") as f:
        f.write("deb %s bookworm main\ndeb %s bookworm-updates main\n"
                "deb %s bookworm-security main\n" % (MIRROR, MIRROR, SECURITY))
    with open(os.path.join(tmp, "etc", "hostname"), "w") as f:
        f.write("qtls-boot\n")
    # Updates too: the host builds against bookworm's point releases and security updates.
    _ok(in_root(tmp, "sh", "-c", "apt-get update -qq && apt-get -y -qq dist-upgrade "
                "&& apt-get clean"), "apt-get dist-upgrade in the root")
    for unit in MASK:
        os.symlink("/dev/null", os.path.join(tmp, "etc", "systemd", "system", unit))
    with open(os.path.join(tmp, STAMP), "w") as f:
        f.write(ROOT_VERSION + "\n")
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    return t1 - t0, time.time() - t1


class _Lock:
    """flock on CACHE/.lock: one builder at a time, and no build under a running test."""

    def __init__(self, shared=False):
        self.shared = shared

    def __enter__(self):
        os.makedirs(CACHE, exist_ok=True)
        self.f = open(os.path.join(CACHE, ".lock"), "w")
        fcntl.flock(self.f, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()


def ensure_root():
    """The cached root's path, built first when missing or stale. Raises Unavailable when
    this machine cannot build or boot it, AssertionError when building it went wrong."""
    check_host()
    with _Lock():
        if _stamp(ROOT) == ROOT_VERSION:
            return ROOT
        mirror_reachable()
        _build(ROOT)
    return ROOT


def dependency_names(depends):
    """Package names from a Depends field: `a (>= 1), b | c` -> [a, b] (the first of each
    alternative, without version or architecture)."""
    names = []
    for part in depends.split(","):
        first = part.split("|")[0].strip()
        if first:
            names.append(first.split()[0].split(":")[0])
    return names


def ensure_packages(root, names):
    """Installs into the cached root those of `names` that it lacks (from the mirror)."""
    with _Lock():
        p = in_root(root, "dpkg-query", "-W", "-f=${Package} ${Status}\\n", network=False)
        have = {l.split()[0] for l in p.stdout.splitlines() if l.endswith("install ok installed")}
        missing = [n for n in names if n not in have]
        if not missing:
            return []
        mirror_reachable()
        _ok(in_root(root, "sh", "-c", "apt-get update -qq && apt-get install -y -qq "
                    "--no-install-recommends %s && apt-get clean" % " ".join(missing)),
            "apt-get install %s in the root" % " ".join(missing))
        return missing


class Container:
    """The cached root booted with systemd-nspawn on a throwaway overlay, with a network
    namespace of its own (its loopback is its own, so ports 25 and 465 are free)."""

    def __init__(self, root, boot_timeout=120):
        self.root = root
        self.boot_timeout = boot_timeout
        self.dir = tempfile.mkdtemp(prefix="boot-", dir=CACHE)
        self.upper, self.work, self.merged = (os.path.join(self.dir, n)
                                              for n in ("upper", "work", "merged"))
        for d in (self.upper, self.work, self.merged):
            os.mkdir(d)
        self.console_path = os.path.join(self.dir, "console.log")
        self.nspawn = None
        self.pid = None
        self.mounted = False
        self.lock = None

    # -- life cycle --
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.lock = _Lock(shared=True).__enter__()  # no rebuild of the root under us
        _ok(run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s"
                 % (self.root, self.upper, self.work), self.merged]), "mount overlay")
        self.mounted = True
        self.console = open(self.console_path, "wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--private-network",
             "--console=read-only", "-D", self.merged, "-b"],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT)
        deadline = time.time() + self.boot_timeout
        while self.pid is None:
            if self.nspawn.poll() is not None:
                raise AssertionError("systemd-nspawn exited %d while booting:\n%s"
                                     % (self.nspawn.returncode, self.console_text()[-4000:]))
            if time.time() > deadline:
                raise AssertionError("no init in the container after %ds:\n%s"
                                     % (self.boot_timeout, self.console_text()[-4000:]))
            self.pid = self._init_pid()
            time.sleep(0.05)
        state = ""
        while state not in ("running", "degraded"):
            if time.time() > deadline or self.nspawn.poll() is not None:
                raise AssertionError("the container's systemd did not settle (is-system-running "
                                     "said %r):\n%s" % (state, self.console_text()[-4000:]))
            state = self.run("systemctl", "is-system-running").stdout.strip()
            time.sleep(0.1)
        self.system_state = state

    def _init_pid(self):
        """The container's PID 1, seen from here: a child of systemd-nspawn that is pid 1 in
        its own pid namespace and has exec'd systemd."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/status" % entry) as f:
                    status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
                with open("/proc/%s/comm" % entry) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if (int(status["PPid"]) == self.nspawn.pid and status["NSpid"].split()[-1] == "1"
                    and comm == "systemd"):
                return int(entry)
        return None

    def stop(self):
        if self.nspawn and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)  # nspawn halts the container cleanly
            try:
                self.nspawn.wait(45)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(10)
        if self.mounted:
            if run(["umount", self.merged]).returncode != 0:
                run(["umount", "-l", self.merged])
            self.mounted = False
        if self.lock:
            self.lock.__exit__()
            self.lock = None
        if os.environ.get("QTLS_KEEP"):
            print("container files kept in", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- inside --
    def run(self, *cmd, timeout=120, input=None, check=False, env=None):
        """cmd inside the container, in all its namespaces (nsenter -a), as root."""
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG": "C", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "TERM": "dumb"}
        e.update(env or {})
        p = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--"] + list(cmd),
                           capture_output=True, text=input is None or isinstance(input, str),
                           input=input, timeout=timeout, env=e)
        if check and p.returncode != 0:
            raise AssertionError("in the container: %s: exit %d\n%s%s" % (
                " ".join(cmd), p.returncode, p.stdout, p.stderr))
        return p

    def sh(self, script, **kw):
        return self.run("sh", "-ec", script, **kw)

    def path(self, inside):
        """A path inside the container as the host sees it (the overlay's merged view)."""
        return os.path.join(self.merged, inside.lstrip("/"))

    def console_text(self):
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


if __name__ == "__main__":
    t0 = time.time()
    try:
        root = ensure_root()
    except Unavailable as e:
        sys.exit("unavailable: %s" % e)
    print("root %s (version %s) ready after %.1fs" % (root, ROOT_VERSION, time.time() - t0))
    if "--boot" in sys.argv:
        t0 = time.time()
        with Container(root) as c:
            print("booted (%s) in %.1fs" % (c.system_state, time.time() - t0))
            print(c.run("systemctl", "--failed", "--no-legend").stdout)
        print("boot and halt took %.1fs" % (time.time() - t0))
