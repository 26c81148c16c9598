#!/usr/bin/env bash
# Benchmark: `stargate add` of one file against Kubo's add of the same file in the same run.
#
#   bash scripts/bench-add.sh [SIZE=256MiB] [RUNS=5]
#
# Prints, for only-hash (`add -n`) and stored adds (a fresh data dir or repo per run): MB/s
# (10^6 bytes per second of wall time, median of RUNS, with the best, the worst and the spread
# best / worst - 1), CPU-seconds per GiB, and the ratio stargate/kubo of the medians. Stargate's
# time is the `stargate add` process's (start-up, store, import, durable commit, exit; no
# daemon: the CLI opens the store itself), Kubo's that of v0.22's AddFile call
# (tests/harness/kubo_add_bench.py). Everything runs inside the loopback-only namespace.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
size="${1:-256MiB}"
runs="${2:-5}"
cd "$bench_repo"
bash scripts/install-test-deps.sh --tools-only >&2
cargo build --release --locked -p stargate-node --bin stargate >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bench_make_file "$work/input" "$size" 1

ours="$(bench_in_ns "$bench_repo/.venv/bin/python" "$bench_repo/tests/harness/add_bench.py" \
  --stargate "$bench_repo/target/release/stargate" --runs "$runs" "$work/input")"
kubo="$(bench_kubo_add "$work/input" "$runs")"
echo "$ours" >&2
echo "$kubo" >&2
python3 - "$ours" "$kubo" "$size" <<'PY'
import json, sys
ours, kubo, size = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
cpuinfo = open("/proc/cpuinfo").read().splitlines()
cpu = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), "?")
sha = "with" if any(" sha_ni" in l for l in cpuinfo if l.startswith("flags")) else "without"
print(f"add of {size} ({ours['bytes']} bytes), {ours['runs']} runs; {cpu}, {sha} SHA extensions")
print(f"  {'':20} {'MB/s':>8} {'best':>8} {'worst':>8} {'spread':>7} {'CPU-s/GiB':>10}")
for mode in ("only_hash", "stored"):
    for name, r in (("stargate", ours), ("kubo", kubo)):
        d = r[mode]
        print(f"  {mode + ' ' + name:20} {d['median_mb_s']:8.1f} {d['best_mb_s']:8.1f} "
              f"{d['worst_mb_s']:8.1f} {d['spread']:6.1%} {d['add_cpu_s_per_gib']:10.2f}")
    print(f"  {mode} ratio stargate/kubo: "
          f"{ours[mode]['median_mb_s'] / kubo[mode]['median_mb_s']:.2f}")
PY
