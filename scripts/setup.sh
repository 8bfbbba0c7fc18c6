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
  openssl curl time bsdutils prometheus etcd-server etcd-client mandoc daemontools lintian ansible-core bash-completion
  systemd-container debootstrap
)

# It says what it does from its first second; the tools' own output goes to a log, shown when
# a step fails.
say() { printf 'setup: %s\n' "$*"; }
log=${QTLS_SETUP_LOG:-/tmp/qtls-setup.log}
: >"$log"
failed() {  # failed WHAT: the log's end, then exit 1
  say "$1 failed; the end of $log:"
  tail -n 60 "$log" | sed 's/^/  | /'
  exit 1
}

all=("${build_pkgs[@]}" "${peer_pkgs[@]}")
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Postfix must not configure or start a system instance; the tests run private ones.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  missing=()
  for p in "${all[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "${#missing[@]} of ${#all[@]} Debian packages are missing: ${missing[*]}"
    say "apt-get update (log: $log)"
    apt-get update -qq >>"$log" 2>&1 || failed "apt-get update"
    say "apt-get install: ${#missing[@]} packages and what they need (a few minutes on a fresh machine)"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
      failed "apt-get install"
    say "packages installed"
  else
    say "all ${#all[@]} Debian packages it needs are installed"
  fi
else
  say "not root, skipping apt-get (run as root on a fresh machine)" >&2
fi

# ninja's [done/total] lines, as one line per tenth of the build.
progress() {  # progress DIR
  local line last=-1 pct
  while IFS= read -r line; do
    if [[ $line =~ ^\[([0-9]+)/([0-9]+)\] ]]; then
      pct=$((BASH_REMATCH[1] * 100 / BASH_REMATCH[2]))
      if ((pct / 10 > last)); then
        last=$((pct / 10))
        say "building $1: ${BASH_REMATCH[1]}/${BASH_REMATCH[2]} steps ($pct%)"
      fi
    elif [[ $line == "ninja: no work to do." ]]; then
      say "$1 is up to date"
    fi
  done
}

# clang, not Debian's GCC 12: see the note at the top of CMakeLists.txt.
build() {  # build DIR [cmake options]
  local dir=$1
  shift
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_COMPILER:.*clang++-14" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  [ -f "$dir/build.ninja" ] || say "configuring $dir (cmake, clang 14${*:+, $*})"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 "$@" >>"$log" 2>&1 ||
    failed "cmake for $dir"
  NINJA_STATUS='[%f/%t] ' cmake --build "$dir" -j"$(nproc)" 2>&1 | tee -a "$log" | progress "$dir"
  [ "${PIPESTATUS[0]}" = 0 ] || failed "the build of $dir"
}
build build
[ "${QTLS_NO_ASAN:-}" = 1 ] || build build-asan -DQTLS_SANITIZE=ON
