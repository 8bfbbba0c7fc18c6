#!/usr/bin/env bash
# The main job on an embedded default: installs and builds what is missing (build/ only), then
# brings up the whole loop on loopback and keeps it up until Ctrl-C (scripts/demo.py says what
# it shows). Run as root on Debian 12. --once: show, then stop.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: first the set-up (Debian packages, then the build of build/), then the demo"
QTLS_NO_ASAN=1 ./scripts/setup.sh
echo "demo: starting the loop (scripts/demo.py)"
exec /usr/bin/python3 scripts/demo.py "$@"
