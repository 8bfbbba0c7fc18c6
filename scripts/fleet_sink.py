#!/usr/bin/python3
"""The mail sink of the fleet walk-through (docs/fleet.md): an SMTP server with STARTTLS that
accepts every message and appends one line per message to a file, so that a script can count
what arrived: the Message-ID (without <>), then `tls` or `plain`.

    scripts/fleet_sink.py --listen 127.0.0.1:12525 --cert sink.pem --key sink.key --out FILE

It prints `fleet_sink: listening on HOST:PORT` once the port is bound, and stops on SIGTERM.
Debian's python3 with python3-aiosmtpd (scripts/setup.sh installs both)."""
import argparse
import asyncio
import email.parser
import email.policy
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Counter:
    """Writes each message's line before answering 250: a 250 means the line is on disk."""

    def __init__(self, path):
        self.out = open(path, "a")

    async def handle_DATA(self, server, session, envelope):
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            envelope.original_content or envelope.content)
        mid = (headers.get("Message-ID") or "-").strip().strip("<>") or "-"
        self.out.write("%s %s\n" % (mid, "tls" if session.ssl else "plain"))
        self.out.flush()
        os.fsync(self.out.fileno())
        return "250 2.0.0 counted"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    counter = Counter(args.out)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(counter, hostname="sink.example.test", tls_context=tls,
                     require_starttls=False, decode_data=False),
        host=host, port=int(port), reuse_address=True))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("fleet_sink: listening on %s:%s" % (host, port), flush=True)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    print("fleet_sink: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
