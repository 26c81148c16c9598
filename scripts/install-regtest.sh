#!/usr/bin/env bash
# Installs the Bitcoin regtest stack the chain tests run against, from the package registries only:
#   - npm `bcoin` 1.0.2 (full node with a Bitcoin Core-style JSON-RPC) into tests/regtest/node_modules,
#     with leveldown overridden to 5.6.0 (prebuilt; bcoin's pinned 4.0.1 does not build on Node 20);
#   - PyPI `e-x` 1.18.0 (ElectrumX) into the repository's .venv.
# Idempotent: a second run changes nothing. Meant for a fresh Debian machine as root (CI) or a
# developer machine that already has node, npm and python3.
#
# Usage: scripts/install-regtest.sh
# Afterwards: tests/regtest/launcher.js starts bcoin, .venv/bin/electrumx_server starts e-x
# (tests/src/regtest.rs does both inside the tests).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
regtest="$root/tests/regtest"
venv="$root/.venv"
ex_version=1.18.0

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# node-gyp compiles bcoin's one required native module (mrmr) against the installed Node's
# headers; with them present it never downloads headers from outside the registries.
[ -f /usr/include/node/node.h ] || need_apt+=(libnode-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing from Debian: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "install-regtest: Node.js $node_major is too old for leveldown 5.6.0's prebuilt binary; install Node.js 18 or newer" >&2
  exit 1
fi

# bcoin. Install scripts are skipped (bcrypto, bsip, bstring and secp256k1 fall back to JavaScript;
# their native builds fail on Node 20 anyway), then only the two modules bcoin needs are built.
if [ -f "$regtest/node_modules/mrmr/build/Release/mrmr.node" ] &&
   [ -f "$regtest/node_modules/.package-lock.json" ] &&
   [ "$regtest/node_modules/.package-lock.json" -nt "$regtest/package-lock.json" ] &&
   [ "$(node -p "require('$regtest/node_modules/bcoin/package.json').version")" = 1.0.2 ]; then
  echo "bcoin 1.0.2 already installed in tests/regtest"
else
  echo "installing bcoin 1.0.2 into tests/regtest"
  (
    cd "$regtest"
    export npm_config_nodedir=/usr npm_config_audit=false npm_config_fund=false
    npm ci --ignore-scripts --no-audit --no-fund
    npm rebuild mrmr leveldown
  )
  test -f "$regtest/node_modules/mrmr/build/Release/mrmr.node"
fi

# e-x into the repository's .venv (shared with the other Python test clients).
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  python3 -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("e-x"))' 2>/dev/null)" = "$ex_version" ]; then
  echo "e-x $ex_version already installed in .venv"
else
  echo "installing e-x $ex_version into .venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "e-x==$ex_version"
fi
test -x "$venv/bin/electrumx_server"

echo "regtest stack ready: node $regtest/launcher.js, $venv/bin/electrumx_server"
