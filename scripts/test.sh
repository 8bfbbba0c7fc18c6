#!/usr/bin/env bash
# Runs the whole test suite: unit tests, fuzz smoke runs and the integration tests that start
# real peers (Postfix, dnsmasq, swaks, Prometheus, scripted servers) on loopback, first on the
# normal build, then on the ASan+UBSan build. Installs and builds what is missing first
# (setup.sh: quick when nothing is). Extra arguments go to both ctest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "test: first the set-up (Debian packages, then build/ and build-asan/), then the tests"
./scripts/setup.sh
echo "== tests on build/ ($(ctest --test-dir build -N | sed -n 's/^Total Tests: //p') tests; ctest prints each as it ends)"
ctest --test-dir build --output-on-failure --timeout 600 "$@"
if [ "${QTLS_NO_ASAN:-}" != 1 ]; then
  echo "== the same tests on build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer)"
  ctest --test-dir build-asan --output-on-failure --timeout 900 "$@"
fi
