#!/usr/bin/python3
"""Shim CPU per delivery next to an empty process.

Starts qtls-remoted and an aiosmtpd sink on loopback, runs the shim N times (message on a
regular file, as qmail-rspawn does) and /bin/true N times, and prints the children's user+sys
CPU per invocation and the ratio. Usage: tests/bench/shim_cpu.py [N] (default 200)."""
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import SHIM, QmailHome, Remoted, free_port  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 ok"


def cpu_of(cmd, n, stdin_path=None, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        with open(stdin_path or "/dev/null", "rb") as f:
            subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    root = tempfile.mkdtemp(prefix="qtls-bench-")
    home = QmailHome(root)
    port = free_port("127.0.0.2")
    sink = Controller(Sink(), hostname="127.0.0.2", port=port)
    sink.start()
    home.write("smtproutes", "example.test:127.0.0.2:%d\n" % port)
    daemon = Remoted(home, root)
    msg = os.path.join(root, "msg")
    with open(msg, "wb") as f:
        f.write(b"Subject: bench\n\n" + (b"x" * 79 + b"\n") * 25)
    env = {"QMAILHOME": home.path, "QTLS_REMOTED_SOCKET": daemon.socket}
    argv = [SHIM, "example.test", "a@b.test", "u@example.test"]
    out = subprocess.run(argv, stdin=open(msg, "rb"), capture_output=True, env=env).stdout
    assert out.startswith(b"r\0K"), out
    t0 = time.time()
    shim = cpu_of(argv, n, msg, env)
    wall = (time.time() - t0) / n
    empty = cpu_of(["/bin/true"], n)
    daemon.stop()
    sink.stop()
    print("deliveries: %d (2 KB message, plain SMTP to aiosmtpd on loopback)" % n)
    print("shim CPU per delivery:  %.3f ms" % (shim * 1000))
    print("empty process (/bin/true): %.3f ms" % (empty * 1000))
    print("ratio shim/empty: %.2f" % (shim / empty if empty else float("inf")))
    print("wall time per delivery: %.2f ms" % (wall * 1000))


if __name__ == "__main__":
    main()
