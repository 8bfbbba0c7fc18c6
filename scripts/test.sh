#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests that start real peers
# (Postfix, dnsmasq, swaks, aiosmtpd servers) on loopback. Needs a build from setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure --timeout 600 "$@"
