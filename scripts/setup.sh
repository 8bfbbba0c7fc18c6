#!/usr/bin/env bash
# Installs every Debian package that the build and the test suite need, then builds qtls twice:
# build/ (what you run) and build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer, which
# scripts/test.sh runs the tests on too). Run as root on Debian 12. Safe to run again: apt-get
# and cmake only do what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build dependencies.
build_pkgs=(
  build-essential clang-14 libclang-rt-14-dev cmake ninja-build pkg-config
  libssl-dev libc-ares-dev libasio-dev libabsl-dev libcpp-httplib-dev
  libgrpc++-dev libgrpc-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libgtest-dev libgmock-dev libsystemd-dev
)
# Real peers the integration tests start on loopback.
peer_pkgs=(
  postfix dnsmasq-base swaks libnet-ssleay-perl libio-socket-ssl-perl libio-socket-inet6-perl
  python3 python3-aiosmtpd python3-cryptography python3-grpcio python3-protobuf
  openssl time bsdutils prometheus etcd-server etcd-client mandoc daemontools lintian ansible-core bash-completion
  systemd-container debootstrap
)

if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Postfix must not configure or start a system instance; the tests run private ones.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  missing=()
  for p in "${build_pkgs[@]}" "${peer_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup.sh: not root, skipping apt-get (run as root on a fresh machine)" >&2
fi

# clang, not Debian's GCC 12: see the note at the top of CMakeLists.txt.
build() {  # build DIR [cmake options]
  local dir=$1
  shift
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_COMPILER:.*clang++-14" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 "$@"
  cmake --build "$dir" -j"$(nproc)"
}
build build
[ "${QTLS_NO_ASAN:-}" = 1 ] || build build-asan -DQTLS_SANITIZE=ON
