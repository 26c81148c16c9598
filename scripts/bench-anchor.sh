#!/usr/bin/env bash
# Anchoring figures (issue 4): transaction vbytes per CID for batches of 1, 10, 100 and 1,000
# CIDs, proof size per CID, and time from queueing to the first confirmation, on a bcoin
# regtest stack inside the loopback-only namespace.
#
#   bash scripts/bench-anchor.sh
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
cd "$bench_repo"
bash scripts/install-regtest.sh >&2
cargo build --locked -p stargate-tests --bin bench-anchor >&2
bench_in_ns "$bench_repo/target/debug/bench-anchor"
