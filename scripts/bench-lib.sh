# Helpers for benchmark scripts. Source it:
#   source "$(dirname "$0")/bench-lib.sh"
#   bench_setup                      # install deps, build release, cd to repo
#   bench_make_file /tmp/f 256MiB 1  # deterministic pseudo-random input
#   bench_in_ns cmd args...          # run cmd inside the loopback-only namespace
#   bench_kubo_add /tmp/f            # JSON: Kubo's add MB/s, only-hash + stored
#   bench_json_get "$json" .only_hash.median_mb_s
#   bench_ratio 300 130              # 2.31
#
# Benchmarks print figures; they are not tests. Everything that starts a node
# runs inside the namespace (loopback only), like the tests.

bench_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Installs the test tools and builds the release binaries (outside the
# namespace: registries are the only network this touches).
bench_setup() {
  cd "$bench_repo" || return 1
  bash scripts/install-test-deps.sh --tools-only >&2 || return 1
  cargo build --release --workspace --bins --locked >&2 || return 1
}

# bench_in_ns CMD... : runs CMD in a fresh network namespace with only lo up.
bench_in_ns() {
  local ns
  if [[ $EUID -eq 0 ]]; then ns=(unshare -n); else ns=(unshare -r -n); fi
  "${ns[@]}" sh -c 'ip link set lo up && exec "$@"' sh "$@"
}

# bench_make_file PATH SIZE SEED : SIZE in bytes or with a KiB/MiB/GiB suffix.
# The same SIZE and SEED give the same bytes.
bench_make_file() {
  local path="$1" size="$2" seed="${3:-1}"
  "$bench_repo/.venv/bin/python" - "$path" "$size" "$seed" <<'EOF'
import os, random, sys
path, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
n = next((int(size[:-3]) * m for u, m in units.items() if size.endswith(u)), None)
n = int(size) if n is None else n
rng = random.Random(seed)
with open(path, "wb") as f:
    left = n
    while left:
        k = min(left, 1 << 20)
        f.write(rng.randbytes(k))
        left -= k
EOF
}

# bench_kubo_add FILE [RUNS] : times Kubo v0.22's AddFile on FILE inside the
# namespace and prints tests/harness/kubo_add_bench.py's JSON line.
bench_kubo_add() {
  bench_in_ns "$bench_repo/.venv/bin/python" "$bench_repo/tests/harness/kubo_add_bench.py" \
    "$1" --runs "${2:-3}"
}

# bench_json_get JSON PATH : a value from a JSON document, e.g. .stored.best_mb_s
bench_json_get() {
  python3 -c 'import json,sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].strip(".").split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(f"{v:.1f}" if isinstance(v, float) else v)' "$1" "$2"
}

# bench_ratio A B : A / B with two decimals.
bench_ratio() {
  python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$1" "$2"
}
