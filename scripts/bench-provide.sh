#!/usr/bin/env bash
# Benchmark: providing 100,000 CIDs (strategy roots) to a small DHT on loopback.
#
#   bash scripts/bench-provide.sh [CIDS=100000] [DHT_PEERS=5] [CONCURRENCY=32]
#
# A daemon's store gets CIDS distinct pinned raw blocks (`stargate block put --pin`, offline,
# in batches); the daemon starts, is connected to DHT_PEERS other daemons (a star), and its
# reprovider announces every pin. Prints the wall time from the first connect until
# stargate_dht_provides_total (ok + failed) reaches CIDS, the reprovider's own log figures, the
# daemon's CPU seconds (utime + stime of its process) over that time, its peak RSS, the provider
# records the DHT peers hold (each keeps at most 65,536: node/src/p2p/records.rs), and the API's
# response time to `id` while it runs (HTTP POST /api/v0/id every 0.2 s and the `stargate id`
# command every second) against the same idle. Target: done well within the reprovide interval
# (22 h), API responsive meanwhile. Runs inside the loopback-only namespace
# (tests/harness/p2p_bench.py provide).
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
cids="${1:-100000}"
dht="${2:-5}"
concurrency="${3:-32}"
bench_setup
json="$(bench_in_ns "$bench_repo/.venv/bin/python" "$bench_repo/tests/harness/p2p_bench.py" provide \
  --stargate "$bench_repo/target/release/stargate" --cids "$cids" --dht "$dht" \
  --concurrency "$concurrency")"
echo "$json"
python3 - "$json" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
print(f"{d['cids']} pinned roots put in {d['fill_seconds']} s; DHT of {d['dht_peers']} peers, "
      f"provide_concurrency {d['concurrency']}")
print(f"provided {d['provides']} in {d['wall_seconds']} s ({d['cids_per_second']} CIDs/s), "
      f"{d['cpu_seconds']} CPU s; reprovider log: {d['reprovider_log']}")
print(f"peak RSS {d['peak_rss_mib']} MiB; records held by the DHT peers: "
      f"{d['provider_records_held_by_dht_peers']}, dropped (store full): "
      f"{d['provider_records_refused_by_dht_peers']}")
for key in ("api_idle", "api_while_providing"):
    a = d[key]
    print(f"{key}: POST /api/v0/id {a['http_id']}; `stargate id` {a['stargate_id']}; "
          f"errors {a['errors']}")
PY
