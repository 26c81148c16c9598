#!/usr/bin/env bash
# The guide's production checklist, "Load test (simulate 100 concurrent users)": one release
# daemon on loopback, USERS clients at once for SECONDS, each looping over gateway reads (16 KiB
# and 4 MiB stored files), API adds (64 KiB of fresh content) and API cats, every answer checked.
# Prints requests/s, MB/s, p50/p90/p99/max by kind and for the gateway and the API, the 503s
# the node shed, errors, and the daemon's RSS idle and at its peak.
#
#   bash scripts/bench-users.sh [USERS=100] [SECONDS=60]
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
cd "$bench_repo"
bash scripts/install-test-deps.sh --tools-only >&2
cargo build --release --locked -p stargate-node --bin stargate >&2
cargo build --locked -p stargate-tests --bin bench-users >&2
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores" >&2
bench_in_ns env STARGATE_BIN="$bench_repo/target/release/stargate" \
  "$bench_repo/target/debug/bench-users" "${1:-100}" "${2:-60}"
