#!/usr/bin/env bash
# Benchmark: node-to-node transfer of one file on loopback, Stargate against Kubo in one run.
#
#   bash scripts/bench-transfer.sh [SIZE=256MiB] [RUNS=5] [--quic]
#
# With --quic the Stargate daemons reach each other (and Kubo reaches them) over QUIC, not TCP.
#
# stargate->stargate is `stargate dag fetch` (the /stargate/car/1.0.0 transfer, every block
# verified and stored) between two daemons; kubo->kubo is Kubo v0.22's Download over Bitswap
# between two Kubo peers; cat stargate<-stargate is `stargate cat` on a daemon connected to the
# first (retrieval, over the transfer; which path brought the blocks is printed);
# kubo<-stargate and stargate<-kubo cross over Bitswap (one run each,
# "n/a" with the reason when a side cannot do it). Prints MB/s (10^6 bytes per second, median
# of RUNS, each receiver starting empty), the spread (best / worst - 1), CPU-seconds per GiB of
# the sending and the receiving node (whole processes), the ratio stargate/kubo, and the CPU. Everything runs inside
# the loopback-only namespace. Builds only the release `stargate` binary.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
size="${1:-256MiB}"
runs="${2:-5}"
transport=("${@:3}")
cd "$bench_repo"
bash scripts/install-test-deps.sh --tools-only >&2
cargo build --release --locked -p stargate-node --bin stargate >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bench_make_file "$work/input" "$size" 1

json="$(bench_in_ns "$bench_repo/.venv/bin/python" "$bench_repo/tests/harness/transfer_bench.py" \
  --stargate "$bench_repo/target/release/stargate" --runs "$runs" "${transport[@]}" "$work/input")"
echo "$json" >&2
python3 - "$json" "$size" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
sha = "with" if any(" sha_ni" in l for l in open("/proc/cpuinfo") if l.startswith("flags")) else "without"
print(f"transfer of {sys.argv[2]} ({r['bytes']} bytes) on loopback; {cpu}, {sha} SHA extensions")
print(f"  {'':24} {'MB/s':>8} {'best':>7} {'worst':>7} {'spread':>7} {'CPU-s/GiB send':>15} {'recv':>6}")
def line(name, runs):
    d = r.get(name, {"error": r.get("error", "not run")})
    if "error" in d:
        print(f"  {name:24} n/a ({d['error'][:160]})")
    else:
        paths = d.get("blocks_by_path")
        via = f"; blocks by path {paths}" if paths else ""
        print(f"  {name:24} {d['median_mb_s']:8.1f} {d['best_mb_s']:7.1f} {d['worst_mb_s']:7.1f} "
              f"{d['spread']:6.1%} {d['sender_cpu_s_per_gib']:15.2f} {d['receiver_cpu_s_per_gib']:6.2f}"
              f"  ({runs}{via})")
line("stargate->stargate", f"median of {r['runs']}")
line("kubo->kubo", f"median of {r['runs']}")
line("cat stargate<-stargate", f"median of {r['runs']}")
line("kubo<-stargate", "one run")
line("stargate<-kubo", "one run")
s, k = r.get("stargate->stargate", {}), r.get("kubo->kubo", {})
c = r.get("cat stargate<-stargate", {})
for name, d in (("stargate->stargate", s), ("cat stargate<-stargate", c)):
    if "median_mb_s" in d and "median_mb_s" in k:
        print(f"  ratio {name} / kubo->kubo: {d['median_mb_s'] / k['median_mb_s']:.2f} (target >= 8)")
PY
