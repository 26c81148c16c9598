#!/usr/bin/env bash
# The test command: installs what the tests need, checks formatting and lints,
# builds, then runs every test of the workspace inside a network namespace
# that has only loopback, so no test can reach beyond 127.0.0.0/8 and ::1.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -E 'test(kubo)' # extra arguments go to cargo nextest run
#
# Environment:
#   STARGATE_TEST_SKIP_LINT=1  skip cargo fmt/clippy (a quicker local loop;
#                              CI never sets it)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
started=$SECONDS
say() { printf '==> %s (%ds)\n' "$*" "$((SECONDS - started))" >&2; }

bash scripts/install-test-deps.sh
say "dependencies installed and workspace built"

if [[ "${STARGATE_TEST_SKIP_LINT:-}" != 1 ]]; then
  cargo fmt --all --check
  say "cargo fmt clean"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  say "cargo clippy clean"
fi
# No file of a crate imports another in a circle, or reaches up into its parent module.
python3 scripts/check-imports.py
say "imports run one way"
# deploy/: the Helm chart, the Dockerfile and the systemd unit, with the real tools.
bash scripts/check-deploy.sh
say "deploy checks passed"

# Everything above may use the network (registries only); everything below
# runs in the namespace, offline.
if cargo nextest --version >/dev/null 2>&1; then
  # The `ci` profile (.config/nextest.toml) sets per-test timeouts and runs
  # every test even after a failure.
  test_cmd=(cargo nextest run --workspace --offline --locked --profile ci "$@")
  doc_cmd=(cargo test --workspace --offline --locked --doc)
else
  test_cmd=(cargo test --workspace --offline --locked --no-fail-fast "$@")
  doc_cmd=()
fi

# Root (CI) gets a plain network namespace; anyone else a user namespace
# mapped to root, which unshare -n alone would refuse.
if [[ $EUID -eq 0 ]]; then ns=(unshare -n); else ns=(unshare -r -n); fi

# Inside: bring lo up, prove nothing but loopback exists, then test.
inner='set -e
ip link set lo up
if ip -o link show | grep -v " lo:" | grep -q .; then
  echo "test.sh: the test namespace has an interface besides lo" >&2; exit 1
fi
"$@"'
# Doc tests first, so the run closes on the main runner's summary.
if ((${#doc_cmd[@]} > 0)); then
  say "running doc tests in a loopback-only namespace"
  CARGO_NET_OFFLINE=true "${ns[@]}" sh -c "$inner" sh "${doc_cmd[@]}"
fi
say "running tests in a loopback-only namespace: ${test_cmd[*]}"
CARGO_NET_OFFLINE=true "${ns[@]}" sh -c "$inner" sh "${test_cmd[@]}"
say "all tests passed"
