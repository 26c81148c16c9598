#!/usr/bin/env bash
# Kubo v0.22's add throughput on this machine: a 256 MiB pseudo-random file,
# only-hash and stored (Kubo's default flatfs, sync on), inside the
# loopback-only namespace. Prints Kubo's JSON line and a one-line summary.
#   bash scripts/bench-kubo-add.sh [SIZE=256MiB] [RUNS=3]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
size="${1:-256MiB}"
runs="${2:-3}"
bash "$bench_repo/scripts/install-test-deps.sh" --tools-only >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bench_make_file "$work/input" "$size" 1
kubo="$(bench_kubo_add "$work/input" "$runs")"
echo "$kubo"
echo "kubo add $size (median of $runs, wall / per CPU-second):" \
  "only-hash $(bench_json_get "$kubo" .only_hash.median_mb_s) / $(bench_json_get "$kubo" .only_hash.median_cpu_mb_s) MB/s," \
  "stored $(bench_json_get "$kubo" .stored.median_mb_s) / $(bench_json_get "$kubo" .stored.median_cpu_mb_s) MB/s"
