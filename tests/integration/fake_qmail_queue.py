#!/usr/bin/python3
"""A stand-in for qmail-queue that records what it was given. Same interface (spec 5.1): the
message on fd 0 read to EOF first, then the envelope on fd 1. It writes
$FAKEQ_DIR/<n>.msg, <n>.env and <n>.vars (the connection's environment variables, as JSON),
and only when the envelope is complete and it is about to
exit 0, so a record exists exactly when qmail-queue would have queued the message. The exit
code comes from $FAKEQ_DIR/exitcode (default 0); an incomplete envelope exits 54, as
qmail-queue does."""
import json
import os
import sys

d = os.environ["FAKEQ_DIR"]
message = sys.stdin.buffer.read()
envelope = os.fdopen(1, "rb", closefd=False).read()
try:
    with open(os.path.join(d, "exitcode")) as f:
        code = int(f.read().strip() or 0)
except FileNotFoundError:
    code = 0
complete = envelope.startswith(b"F") and envelope.endswith(b"\0\0") or envelope == b"F\0\0"
if not complete:
    sys.exit(54)
if code == 0:
    n = len([x for x in os.listdir(d) if x.endswith(".env")])
    base = os.path.join(d, "%d" % n)
    seen = {k: v for k, v in os.environ.items()
            if k in ("PROTO", "RELAYCLIENT") or k.startswith("TCP")}
    with open(base + ".vars", "w") as f:
        json.dump(seen, f)
    with open(base + ".msg.tmp", "wb") as f:
        f.write(message)
    os.rename(base + ".msg.tmp", base + ".msg")
    with open(base + ".env.tmp", "wb") as f:
        f.write(envelope)
    os.rename(base + ".env.tmp", base + ".env")
sys.exit(code)
