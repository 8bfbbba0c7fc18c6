#!/usr/bin/env bash
# Inbound load figures for qtls-smtpd: STARTTLS sessions/s and messages/s at 1, 16 and 256
# concurrent clients (full TLS 1.3 handshakes, 2 KB messages, a null qmail-queue), and memory
# per idle TLS connection. Client and server share this machine's cores.
#   tests/bench/smtpd_bench.sh [seconds per run, default 5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${QTLS_BUILD_DIR:-$here/../../build}
secs=${1:-5}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/control"
echo bench.test > "$tmp/control/me"
echo agent.test > "$tmp/control/rcpthosts"
/usr/bin/python3 -c "
import sys; sys.path.insert(0, '$here/../data'); import certs
f = certs.CertFactory('$tmp'); i = f.leaf('agent', dns=['agent.test'])
open('$tmp/control/servercert.pem', 'w').write(open(i.pem_path).read())"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_agent() {
  "$build/agent/qtls-smtpd" --qmail-home "$tmp" --qmail-queue "$build/tests/null_qmail_queue" \
    --listen "127.0.0.1:$port" --max-per-client 2000 --state-dir "$tmp/state" \
    --admin-listen "unix:$tmp/admin.sock" --user "$(id -un)" 2> "$tmp/log" &
  pid=$!
  sleep 0.5
}
start_agent
echo "qtls-smtpd pid $pid on 127.0.0.1:$port; $(nproc) cores shared by client and server"
for c in 1 16 256; do
  "$build/tests/smtpd_load" --port "$port" --clients $c --seconds "$secs" --mode sessions
  "$build/tests/smtpd_load" --port "$port" --clients $c --seconds "$secs" --mode messages
done
# Memory per idle TLS connection, on a fresh agent (memory freed by the runs above would be
# reused and hide the cost).
kill $pid; wait $pid 2>/dev/null || true
start_agent
rss() { awk '/VmRSS/{print $2}' /proc/$pid/status; }
"$build/tests/smtpd_load" --port "$port" --clients 1 --seconds 1 --mode sessions > /dev/null
before=$(rss)
"$build/tests/smtpd_load" --port "$port" --clients 256 --seconds 4 --mode idle &
lp=$!
sleep 3
during=$(rss)
wait $lp || true
echo "server RSS: ${before} KiB before, ${during} KiB with 256 idle TLS sessions:" \
     "$(( (during - before) * 1024 / 256 )) bytes per idle TLS connection"
