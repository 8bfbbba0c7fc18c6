#!/usr/bin/env python3
"""Outbound delivery benchmark: qtls through the shim, driven exactly as qmail-rspawn drives
qmail-remote (rspawn_driver: fork and exec per delivery, fd 0 the message file, fd 1 and 2 a
pipe), against a real Postfix STARTTLS sink on loopback, the policy `verify` (tlspolicy with
the test CA and match=mx.test). Modes: connection reuse on (the default), reuse off, plain
SMTP (level none, reuse on), and a null qmail-remote that prints K (the ceiling of any
drop-in). Concurrency 1, 4 and 16. Prints deliveries/s, latency p50/p99, CPU per delivery of
the shim, the daemon and the whole machine (the sink included), and the sink's connections
and the daemon's full and resumed TLS handshakes.

    tests/bench/remote_bench.py [COUNT]    (default 600 per run; QTLS_BUILD_DIR, default build/)
    QTLS_BENCH_QUICKACK=no                 also run reuse off without TCP_QUICKACK
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import BUILD, SHIM, QmailHome, Remoted, certs  # noqa: E402
from postfix_sink import PostfixSink  # noqa: E402

DRIVER = os.path.join(BUILD, "tests", "rspawn_driver")
SEND_DRIVER = os.path.join(BUILD, "tests", "qmail_send_driver")
RSPAWN = os.path.join(BUILD, "services", "shim", "qtls-rspawn")
NULL_REMOTE = os.path.join(BUILD, "tests", "null_qmail_remote")
HZ = os.sysconf("SC_CLK_TCK")


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def proc_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])  # utime + stime


def metric(daemon, name, labels):
    if daemon is None:
        return 0.0
    with urllib.request.urlopen("http://%s/metrics" % daemon.metrics_address()) as r:
        text = r.read().decode()
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else 0.0


def sessions(pf):
    log = pf.log()
    return len(re.findall(r"\bconnect from ", log)) - len(
        re.findall(r"disconnect from \S+ commands=0/0", log))


def run(label, conc, count, argv, env, pf, daemon, driver=None):
    msg = run.message
    before = (machine_ticks(), proc_ticks(daemon.proc.pid) if daemon else 0, sessions(pf),
              metric(daemon, "qtls_remote_tls_resumptions_total", 'result="full"'),
              metric(daemon, "qtls_remote_tls_resumptions_total", 'result="resumed"'))
    cmd = driver or [DRIVER, str(conc), str(count), msg]
    if driver:
        cmd = driver[:1] + [str(conc), str(count)] + driver[1:]
    p = subprocess.run(cmd + argv, env=env, capture_output=True, text=True)
    time.sleep(0.3)  # the last QUITs and the sink's log lines
    after = (machine_ticks(), proc_ticks(daemon.proc.pid) if daemon else 0, sessions(pf),
             metric(daemon, "qtls_remote_tls_resumptions_total", 'result="full"'),
             metric(daemon, "qtls_remote_tls_resumptions_total", 'result="resumed"'))
    if p.returncode != 0:
        raise SystemExit("%s conc %d failed: %s%s" % (label, conc, p.stdout, p.stderr))
    r = dict(kv.split("=") for kv in p.stdout.split())
    machine = (after[0] - before[0]) * 1000.0 / HZ / count
    daemon_ms = (after[1] - before[1]) * 1000.0 / HZ / count
    print("%-22s conc %2d: %7.1f deliveries/s  p50 %6.2f ms  p99 %6.2f ms  CPU/delivery: front "
          "%5.2f ms, daemon %5.2f ms, machine %5.2f ms  sink connections %4d  TLS full %4d "
          "resumed %4d" % (label, conc, float(r["rate"]), float(r["p50_ms"]), float(r["p99_ms"]),
                           float(r["child_cpu_ms"]), daemon_ms, machine, after[2] - before[2],
                           after[3] - before[3], after[4] - before[4]), flush=True)
    return float(r["rate"]), machine, daemon_ms, float(r["p50_ms"])


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    root = tempfile.mkdtemp(prefix="qtls-remote-bench-")
    os.chmod(root, 0o755)
    pki = certs.CertFactory(root)
    mx = pki.leaf("mx", dns=["mx.test"], ips=["127.0.0.2"])
    pf = PostfixSink(root, mx)
    run.message = os.path.join(root, "message")
    with open(run.message, "wb") as f:
        f.write(b"Subject: bench\n\n" + (b"x" * 79 + b"\n") * 25)  # 2 KB
    results = {}
    modes = [("verify, reuse", "verify", []), ("verify, no reuse", "verify",
                                               ["--connection-idle", "0"]),
             ("plain, reuse", "none", [])]
    if os.environ.get("QTLS_BENCH_QUICKACK") == "no":
        modes.append(("verify, no reuse, -qa", "verify",
                      ["--connection-idle", "0", "--no-quickack"]))
    try:
        for label, level, args in modes:
            d = os.path.join(root, re.sub(r"\W+", "-", label))
            os.makedirs(d)
            home = QmailHome(d)
            home.write("smtproutes", "example.test:127.0.0.2:%d\n" % pf.port)
            if level == "verify":
                home.write("tlspolicy", "example.test verify ca=%s match=mx.test\n"
                           % pki.ca.cert_path)
            else:
                home.write("tlspolicy", "example.test none\n")
            daemon = Remoted(home, d, args=args + ["--threads", "2"])
            env = {"QMAILHOME": home.path, "QTLS_REMOTED_SOCKET": daemon.socket,
                   "PATH": "/usr/bin:/bin"}
            argv = [SHIM, "example.test", "a@sender.test", "u@example.test"]
            subprocess.run([DRIVER, "4", "50", run.message] + argv, env=env,
                           capture_output=True)  # warm-up
            for conc in (1, 4, 16):
                n = count // 3 if conc == 1 else count
                results[(label, conc)] = run(label, conc, n, argv, env, pf, daemon)
            if label == "verify, reuse":
                # The same daemon and policy through qtls-rspawn: no process per delivery.
                mess = os.path.join(home.path, "queue", "mess", "1")
                os.makedirs(mess)
                shutil.copy(run.message, os.path.join(mess, "100"))
                os.makedirs(os.path.join(home.path, "queue", "lock"))
                renv = dict(env, QTLS_QMAILQ_USER="root")
                for conc in (1, 4, 16):
                    n = count // 3 if conc == 1 else count
                    results[("rspawn", conc)] = run(
                        "rspawn, verify, reuse", conc, n, [RSPAWN], renv, pf, daemon,
                        driver=[SEND_DRIVER, "1/100", "u@example.test"])
            daemon.stop()
        for conc in (1, 4, 16):
            n = count // 3 if conc == 1 else count
            results[("null", conc)] = run("null qmail-remote", conc, n, [NULL_REMOTE], {}, pf,
                                          None)
        print()
        null16 = results[("null", 16)][0]
        reuse16, reuse_machine, reuse_daemon, _ = results[("verify, reuse", 16)]
        print("reuse on, conc 16: %.2fx the null qmail-remote's deliveries/s; daemon CPU %.2f ms, "
              "machine CPU %.2f ms per delivery" % (reuse16 / null16, reuse_daemon, reuse_machine))
        print("p50 at conc 1: reuse %.2f ms, fresh connection %.2f ms" %
              (results[("verify, reuse", 1)][3], results[("verify, no reuse", 1)][3]))
        rs16 = results[("rspawn", 16)]
        print("qtls-rspawn, conc 16: %.2fx the shim path's deliveries/s; machine CPU %.2f ms per "
              "delivery (shim path %.2f ms)" % (rs16[0] / reuse16, rs16[1], reuse_machine))
    finally:
        pf.stop()


if __name__ == "__main__":
    main()
