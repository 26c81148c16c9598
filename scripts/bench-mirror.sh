#!/usr/bin/env bash
# Benchmark: mirroring between instances on loopback (issue 12).
#
#   bash scripts/bench-mirror.sh [propagation|catchup|quiet|all] [extra driver args...]
#
# propagation: 20 release daemons, each connected to 3 others (a ring with chords); 100 uploads
#   of 64 KiB added with `announce` round robin; p50/p99/max from the add request to the content
#   stored and pinned on every other node, and the daemons' CPU seconds and peak RSS against an
#   idle daemon's over the same run. Target p99 < 250 ms.
# catchup: a node that missed 2,000 small uploads rejoins 10 nodes: seconds until it holds all
#   of them, with the sync protocol and with manifests only (sync off). Target < 5 s.
# quiet: 10 nodes holding 200 mirrored uploads, 45 s after the last change, 60 s with nothing
#   new: bytes on the loopback interface against the same network without mirroring; the
#   mirror's share per peer per minute. Target < 2 KB.
# Driver: tests/harness/mirror_bench.py. Everything runs inside the loopback-only namespace.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
what="${1:-all}"
shift || true
cd "$bench_repo"
bash scripts/install-test-deps.sh --tools-only >&2
cargo build --release --locked -p stargate-node --bin stargate >&2
grep -m1 -o 'sha_ni' /proc/cpuinfo >/dev/null && sha="with SHA extensions" || sha="without SHA extensions"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $sha"
run() {
  bench_in_ns "$bench_repo/.venv/bin/python" "$bench_repo/tests/harness/mirror_bench.py" \
    "$1" --stargate "$bench_repo/target/release/stargate" "${@:2}" | tail -1
}
for w in propagation catchup quiet; do
  if [[ "$what" == all || "$what" == "$w" ]]; then
    echo "$w: $(run "$w" "$@")"
  fi
done
