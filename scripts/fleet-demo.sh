#!/usr/bin/env bash
# A whole fleet on loopback, as docs/fleet.md's walk-through stands it up: a CA, etcd with client
# certificates and roles, three qtls-remoted nodes, a sink, Prometheus, mail through every node,
# one rollout that goes through and one that its gate rolls back, then everything stopped. It
# installs and builds what is missing first (build/ only), then runs every ```sh block of the
# walk-through, showing each as it goes (scripts/walkthrough.py). Run as root on Debian 12.
# FLEET=DIR: where its files go (default /tmp/qtls-fleet; left there, logs included).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "fleet-demo: first the set-up (Debian packages, then the build of build/), then the walk-through"
QTLS_NO_ASAN=1 ./scripts/setup.sh
b=$PWD/build/services
export PATH=$b/remoted:$b/shim:$b/ctl:$PATH
echo "fleet-demo: the build's programs first on PATH: $b/remoted, $b/shim, $b/ctl"
echo "fleet-demo: running docs/fleet.md, \"Standing up a fleet: a walk-through\" (scripts/walkthrough.py)"
exec /usr/bin/python3 scripts/walkthrough.py docs/fleet.md "$@"
