#!/usr/bin/env bash
# Installs every Debian package that the build and the test suite need, then builds qtls.
# Run as root on Debian 12. Safe to run again: apt-get and cmake only do what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build dependencies.
build_pkgs=(
  build-essential clang-14 cmake ninja-build pkg-config
  libssl-dev libc-ares-dev libasio-dev libabsl-dev libcpp-httplib-dev
  libgrpc++-dev libgrpc-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libgtest-dev libgmock-dev
)
# Real peers the integration tests start on loopback.
peer_pkgs=(
  postfix dnsmasq-base swaks libnet-ssleay-perl libio-socket-ssl-perl libio-socket-inet6-perl
  python3 python3-aiosmtpd python3-cryptography python3-grpcio python3-protobuf
  openssl time bsdutils prometheus
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
if [ -f build/CMakeCache.txt ] && ! grep -q "^CMAKE_CXX_COMPILER:.*clang++-14" build/CMakeCache.txt; then
  rm -rf build
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
cmake --build build -j"$(nproc)"
