#!/usr/bin/env bash
# Benchmark: `stargate add` of one file against Kubo's add of the same file in the same run.
#
#   bash scripts/bench-add.sh [SIZE=256MiB] [RUNS=3]
#
# Prints MB/s (10^6 bytes per second of wall time, median of RUNS) for only-hash (`add -n`)
# and stored adds (a fresh data dir per run, no daemon: the CLI opens the store itself), the same
# for Kubo v0.22's AddFile, and the ratios. Everything runs inside the loopback-only namespace.
# Stargate's time is the `stargate add` process's wall time (start-up, store, import, exit),
# Kubo's that of its AddFile call: neither counts entering the namespace.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
size="${1:-256MiB}"
runs="${2:-3}"
bench_setup
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bench_make_file "$work/input" "$size" 1
bytes=$(stat -c %s "$work/input")
stargate="$bench_repo/target/release/stargate"

# median_mb_s MODE : times RUNS adds of the input, prints the median MB/s. The clock is read
# inside the namespace, just around the `stargate add` process (bash's $EPOCHREALTIME, no fork),
# as Kubo's figure times only its AddFile call: entering the namespace is not counted.
median_mb_s() {
  local mode="$1" i
  for ((i = 0; i < runs; i++)); do
    local dir="$work/data-$mode-$i"
    local flags=(-Q)
    [[ $mode == only-hash ]] && flags+=(-n)
    local span
    # shellcheck disable=SC2016 # expanded by the inner bash
    span=$(bench_in_ns env STARGATE_DATA_DIR="$dir" bash -c \
      's=$EPOCHREALTIME; "$@" >/dev/null || exit; e=$EPOCHREALTIME; echo "$s $e"' \
      bash "$stargate" add "${flags[@]}" "$work/input")
    rm -rf "$dir"
    python3 -c 'import sys; s, e = map(float, sys.argv[2].split()); print(int(sys.argv[1]) / (e - s) / 1e6)' \
      "$bytes" "$span"
  done | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", a[int((NR+1)/2)]}'
}

only_hash=$(median_mb_s only-hash)
stored=$(median_mb_s stored)
kubo="$(bench_kubo_add "$work/input" "$runs")"
kubo_only_hash=$(bench_json_get "$kubo" .only_hash.median_mb_s)
kubo_stored=$(bench_json_get "$kubo" .stored.median_mb_s)

printf 'add of %s (%d bytes), median of %d runs, MB/s:\n' "$size" "$bytes" "$runs"
printf '  only-hash: stargate %8s   kubo %8s   ratio %s\n' "$only_hash" "$kubo_only_hash" \
  "$(bench_ratio "$only_hash" "$kubo_only_hash")"
printf '  stored:    stargate %8s   kubo %8s   ratio %s\n' "$stored" "$kubo_stored" \
  "$(bench_ratio "$stored" "$kubo_stored")"
