#!/usr/bin/env bash
# Gateway time to first byte for a CID held two hops away: three release daemons in a line
# A-B-C on loopback, a fresh 1 MiB file added on A per run, its provider record in the DHT, then
# GET /ipfs/<cid> on C's gateway (C asks B, then finds A through the DHT, dials it, and streams
# the DAG from it over the CAR transfer, A being a Stargate node). Prints the median, min and max
# over RUNS, for the first byte and the whole body, and the blocks each path brought.
#
#   bash scripts/bench-ttfb.sh [RUNS=10]
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
cd "$bench_repo"
bash scripts/install-test-deps.sh --tools-only >&2
cargo build --release --locked -p stargate-node --bin stargate >&2
cargo build --locked -p stargate-tests --bin bench-ttfb >&2
bench_in_ns env STARGATE_BIN="$bench_repo/target/release/stargate" \
  "$bench_repo/target/debug/bench-ttfb" "${1:-10}"
