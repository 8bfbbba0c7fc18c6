#!/usr/bin/env python3
"""Fleet scale benchmark: one real etcd (TLS, client certificates) and N node watchers of
the real node-side code in one process (fleet_watchers), for N = 50, 500 and 5000 unless
given. Prints, per N, the time from writing every target to every ACK.

    tests/bench/fleet_bench.py [N ...]     (QTLS_BUILD_DIR, default build/)
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
from fleet_harness import Etcd  # noqa: E402
from harness import BUILD  # noqa: E402
import certs  # noqa: E402


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [50, 500, 5000]
    root = tempfile.mkdtemp(prefix="qtls-fleet-bench-")
    pki = certs.CertFactory(root)
    etcd = Etcd(root, pki)
    node = pki.leaf("bench-node", cn="bench-node", ips=[])
    try:
        for n in sizes:
            p = subprocess.run([os.path.join(BUILD, "tests", "fleet_watchers"),
                                "--etcd", etcd.url, "--ca", pki.ca.cert_path,
                                "--cert", node.cert_path, "--key", node.key_path,
                                "--nodes", str(n), "--dir", os.path.join(root, "nodes")],
                               capture_output=True, text=True, timeout=1800)
            sys.stdout.write(p.stdout)
            if p.returncode != 0:
                sys.stdout.write("fleet_watchers exit %d: %s\n" % (p.returncode, p.stderr[-2000:]))
    finally:
        etcd.destroy()


if __name__ == "__main__":
    main()
