#!/usr/bin/env bash
# Benchmark: stego results from the approval callback to an ingestion record on every node
# (issue 13).
#
#   bash scripts/bench-stego.sh [callbacks|ingest|all] [extra driver args...]
#
# callbacks: 10 daemons, each connected to 3 others (a ring with chords), all mirroring stego
#   results and making ingestion records; 100 signed approval callbacks, round robin, each of a
#   fresh 64 KiB image and its payload added on the approving node just before; p50/p99/max from
#   the callback request to the ingestion record made on every one of the 10 nodes (the latest
#   record's own creation time). Target p99 < 1 s. Driver: tests/harness/mirror_bench.py stego,
#   inside the loopback-only namespace. STARGATE_BIN=path runs another binary than the release
#   one (say target/debug/stargate; the figures are then a debug build's).
# ingest: the pull API over 100,000 records, pages of 1,000: pages per second and the p99 of the
#   first and the last pages (`cargo run --release -p stargate-http-gateway --example
#   bench_ingest`; no network).
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
what="${1:-all}"
shift || true
cd "$bench_repo"
grep -m1 -o 'sha_ni' /proc/cpuinfo >/dev/null && sha="with SHA extensions" || sha="without SHA extensions"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $sha"
if [[ "$what" == all || "$what" == callbacks ]]; then
  bash scripts/install-test-deps.sh --tools-only >&2
  bin="${STARGATE_BIN:-}"
  if [[ -z "$bin" ]]; then
    cargo build --release --locked -p stargate-node --bin stargate >&2
    bin="$bench_repo/target/release/stargate"
  fi
  echo "callbacks: $(bench_in_ns "$bench_repo/.venv/bin/python" \
    "$bench_repo/tests/harness/mirror_bench.py" stego --stargate "$bin" "$@" | tail -1)"
fi
if [[ "$what" == all || "$what" == ingest ]]; then
  echo "ingest: $(cargo run --release --locked -q -p stargate-http-gateway --example bench_ingest -- 100000 1000 | tail -1)"
fi
