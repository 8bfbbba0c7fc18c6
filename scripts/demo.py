#!/usr/bin/env python3
"""The whole loop on loopback, with the programs built in build/ (scripts/demo.sh builds them):

  a message -> qtls-remote (the shim, run as qmail-rspawn runs qmail-remote)  \\
  a message -> qtls-rspawn (played as qmail-send plays qmail-rspawn)          -> qtls-remoted
     -> verified STARTTLS (control/tlshosts/mx.demo.test.pem) -> qtls-smtpd -> qmail-queue

with a CA and a certificate made here, dnsmasq answering for mx.demo.test, and a stand-in for
qmail-queue that keeps each message it is given. Shows each delivery's report and log line,
the message as it arrived, /metrics and qtlsctl, then stays up until Ctrl-C (with --once:
exits after showing). Run as root."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("QTLS_BUILD_DIR", os.path.join(HERE, "..", "build"))
from harness import BUILD, Dnsmasq, QmailHome, Remoted, certs, run_shim, wait_for  # noqa: E402
from smtpd_harness import Agent  # noqa: E402

QTLSCTL = os.path.join(BUILD, "services", "ctl", "qtlsctl")
RSPAWN = os.path.join(BUILD, "services", "shim", "qtls-rspawn")


def say(title, text=""):
    print("\n== %s" % title)
    if text:
        print(text.rstrip())
    sys.stdout.flush()


def rspawn_delivery(home, socket_path, messid, recip):
    """One delivery through qtls-rspawn, asked for as qmail-send asks: its answer text."""
    env = {"PATH": "/usr/bin:/bin", "QMAILHOME": home.path, "QTLS_REMOTED_SOCKET": socket_path,
           "QTLS_QMAILQ_USER": "root"}
    p = subprocess.Popen([RSPAWN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    p.stdin.write(b"\0" + messid.encode() + b"\0demo@sender.test\0" + recip.encode() + b"\0")
    p.stdin.close()  # EOF: it finishes this delivery, answers and exits
    out = p.stdout.read()
    p.wait(60)
    concurrency, slot, text = out[0], out[1], out[2:].rstrip(b"\0")
    return concurrency, slot, text.decode(errors="replace")


def main():
    once = "--once" in sys.argv[1:]
    root = tempfile.mkdtemp(prefix="qtls-demo-")
    os.chmod(root, 0o755)
    pki = certs.CertFactory(root, ca_name="qtls demo CA")
    mx = pki.leaf("mx", dns=["mx.demo.test"], ips=["127.0.0.1"])
    dns = Dnsmasq(["--address=/mx.demo.test/127.0.0.1"])
    started = [dns]

    # Inbound: qtls-smtpd for demo.test, STARTTLS with the demo certificate.
    inbound = QmailHome(os.path.join(root, "inbound"))
    inbound.write("me", "mx.demo.test\n")
    inbound.write("rcpthosts", "demo.test\n")
    with open(mx.pem_path) as f:
        inbound.write("servercert.pem", f.read(), 0o600)
    queue = os.path.join(root, "queued")
    os.makedirs(queue)
    # Hand edits apply by themselves, as on a real host (the test harness turns that off).
    watch = ["--watch-control", "500"]
    agent = Agent(inbound, os.path.join(root, "inbound"), queue, args=watch, tls_port=False)
    started.append(agent)

    # Outbound: qtls-remoted, demo.test routed to mx.demo.test, which must present a
    # certificate the demo CA signed for that name (qmail-tls's tlshosts/ rule: verify).
    outbound = QmailHome(os.path.join(root, "outbound"))
    outbound.write("smtproutes", "demo.test:mx.demo.test:%d\n" % agent.port)
    with open(pki.ca.cert_path) as f:
        outbound.write("tlshosts/mx.demo.test.pem", f.read())
    remoted = Remoted(outbound, os.path.join(root, "outbound"), dns_port=dns.port, args=watch)
    started.append(remoted)

    def stop(*_):
        failed = False
        for s in reversed(started):
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001 - show it, go on stopping the rest
                print("stopping %s: %s" % (type(s).__name__, e))
                failed = True
        print("\nstopped; files left in %s" % root)
        sys.exit(1 if failed else 0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    say("started", "qtls-smtpd on 127.0.0.1:%d (control in %s)\nqtls-remoted on %s "
        "(control in %s)\ndnsmasq on 127.0.0.1:%d: mx.demo.test = 127.0.0.1"
        % (agent.port, inbound.control, remoted.socket, outbound.control, dns.port))

    # 1. Through the shim, as qmail-rspawn runs qmail-remote.
    out, err, rc = run_shim(remoted.socket, outbound, ("demo.test", "demo@sender.test",
                                                       "alice@demo.test"),
                            b"Subject: through the shim\n\nhello from qtls-remote\n")
    say("qtls-remote demo.test demo@sender.test alice@demo.test  (report bytes, NUL as \\0)",
        out.decode(errors="replace").replace("\0", "\\0"))

    # 2. Through qtls-rspawn, as qmail-send asks qmail-rspawn.
    mess = os.path.join(outbound.path, "queue", "mess", "1")
    os.makedirs(mess)
    os.makedirs(os.path.join(outbound.path, "queue", "lock"))
    with open(os.path.join(mess, "100"), "wb") as f:
        f.write(b"Subject: through qtls-rspawn\n\nhello from qtls-rspawn\n")
    concurrency, slot, text = rspawn_delivery(outbound, remoted.socket, "1/100", "bob@demo.test")
    say("qtls-rspawn: concurrency %d; answer for slot %d" % (concurrency, slot), text)

    wait_for(lambda: len([n for n in os.listdir(queue) if n.endswith(".env")]) == 2,
             what="both messages at qmail-queue")
    # The daemon logs a delivery after it answers the front end: wait for both lines.
    def delivery_lines():
        return [l for l in remoted.read_log().splitlines() if "delivery id=" in l]
    wait_for(lambda: len(delivery_lines()) == 2, what="both delivery lines in the log")
    lines = delivery_lines()
    say("qtls-remoted's delivery lines (level requested/achieved, verify=ok: checked against "
        "the demo CA)", "\n".join(lines))
    with open(os.path.join(queue, "0.msg"), "rb") as f:
        say("the first message as qmail-queue got it from qtls-smtpd",
            f.read().decode(errors="replace"))
    with urllib.request.urlopen("http://%s/metrics" % remoted.metrics_address()) as r:
        metrics = [l for l in r.read().decode().splitlines()
                   if l.startswith(("qtls_remote_deliveries_total{result=\"success\"",
                                    "qtls_remote_tls_sessions_total",
                                    "qtls_remote_connection_cache_total"))]
    say("qtls-remoted /metrics (excerpt) at http://%s/metrics" % remoted.metrics_address(),
        "\n".join(metrics))
    p = subprocess.run([QTLSCTL, "--target", "unix://" + remoted.admin_socket, "policy", "get"],
                       capture_output=True, text=True)
    say("qtlsctl --target unix://%s policy get" % remoted.admin_socket, p.stdout + p.stderr)

    if once:
        stop()
    say("up", "Poke it: swaks --server 127.0.0.1:%d --to you@demo.test --tls\n"
        "or deliver again: QMAILHOME=%s QTLS_REMOTED_SOCKET=%s %s/services/shim/qtls-remote "
        "demo.test me@sender.test you@demo.test < /etc/hostname\nCtrl-C stops everything."
        % (agent.port, outbound.path, remoted.socket, BUILD))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
