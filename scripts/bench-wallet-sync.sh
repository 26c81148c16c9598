#!/usr/bin/env bash
# Wallet sync figures (issue 11): a fresh node's anchoring wallet with N transactions (coinbase
# outputs or ordinary payments) synced through the RPC and the Electrum backend on the same bcoin
# + e-x regtest stack (e-x with its default cost limits, as a public server), with the slowest
# balance and status answers during the sync, inside the loopback-only namespace.
#
#   bash scripts/bench-wallet-sync.sh [coinbase|payments] [N]
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
cd "$bench_repo"
bash scripts/install-regtest.sh >&2
cargo build --locked -p stargate-tests --bin bench-wallet-sync >&2
bench_in_ns "$bench_repo/target/debug/bench-wallet-sync" "$@"
