#!/usr/bin/env python3
"""Checks the Helm chart's rendered manifests against what the node reads.

Run by scripts/check-deploy.sh after kubernetes-validate (which checks the Kubernetes schemas):
this checks what a schema cannot see. Every STARGATE_* variable the chart sets must name a key
of node/src/default-config.toml, a secret the node reads, or one of the few variables the node
reads besides; with the chart's default values every [ipfs] key must be set, to the node's own
default; secrets must come from the Secret (environment or mounted file); probes, ports,
Services and the ServiceMonitor must point at each other; the pod must run locked down.

    check-rendered.py default RENDERED.yaml
    check-rendered.py production RENDERED.yaml
    check-rendered.py env RENDERED.yaml SECRET_DIR   # prints NAME=VALUE lines for the node
    check-rendered.py config RENDERED.yaml           # prints the ConfigMap's config.toml, if any

Needs PyYAML (the deploy tools' venv has it); tomllib is in Python 3.11+.
"""

import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "node/src/default-config.toml"

# Variables the node reads that are not configuration keys (node/src/config.rs).
NOT_KEYS = {"STARGATE_DATA_DIR", "STARGATE_LOG", "STARGATE_BITCOIN_NETWORK"}
SECRETS = {
    "STARGATE_API_KEY",
    "STARGATE_CHAIN_RPC_PASSWORD",
    "STARGATE_CHAIN_WALLET_KEY",
    "STARGATE_INGEST_TOKEN",
    "STARGATE_STEGO_CALLBACK_SECRET",
}
# Secrets the node also reads from the file named by NAME_FILE.
FILE_SECRETS = {"STARGATE_INGEST_TOKEN", "STARGATE_STEGO_CALLBACK_SECRET"}

failures = []


def fail(message):
    failures.append(message)


def load(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def one(docs, kind, name=None):
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        raise SystemExit(f"check-rendered: expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def toml_value(raw):
    """The value the node makes of a variable: a TOML literal if it is one, else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def config_keys():
    config = tomllib.loads(DEFAULT_CONFIG.read_text())
    keys = {}
    for section, table in config.items():
        for key, value in table.items():
            keys[f"STARGATE_{section}_{key}".upper()] = value
    return config, keys


def container(docs):
    sts = one(docs, "StatefulSet")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return sts, c


def check_env(docs, defaults_expected):
    config, keys = config_keys()
    sts, c = container(docs)
    env = {e["name"]: e for e in c.get("env", [])}
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"].get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    for name, e in env.items():
        if not name.startswith("STARGATE_"):
            continue
        base = name.removesuffix("_FILE")
        if name.endswith("_FILE") and base in FILE_SECRETS:
            check_secret_file(e, volumes, mounts)
        elif name in SECRETS:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref is None or "value" in e:
                fail(f"{name} must come from a Secret (secretKeyRef), not a plain value")
        elif name in NOT_KEYS:
            pass
        elif name in keys:
            if "value" not in e:
                fail(f"{name}: no value")
                continue
            value = toml_value(e["value"])
            if type(value) is not type(keys[name]) and not (
                isinstance(keys[name], float) and isinstance(value, int)
            ):
                fail(
                    f"{name}={e['value']!r} reads as {type(value).__name__}, "
                    f"the node wants {type(keys[name]).__name__}"
                )
        else:
            fail(f"{name} is not a key of node/src/default-config.toml nor a secret the node reads")
    if defaults_expected:
        for key, default in config["ipfs"].items():
            name = f"STARGATE_IPFS_{key}".upper()
            if name not in env:
                fail(f"values.yaml sets no stargate.ipfs key for [ipfs] {key} ({name})")
            elif toml_value(env[name]["value"]) != default:
                fail(
                    f"{name}={env[name]['value']} in values.yaml but the node's default is "
                    f"{default!r}: keep them equal"
                )
    return env


def check_secret_file(e, volumes, mounts):
    path = e.get("value", "")
    mount = next((m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")), None)
    if mount is None:
        fail(f"{e['name']}={path} is under no volume mount")
        return
    volume = volumes.get(mount["name"], {}).get("secret")
    if volume is None:
        fail(f"{e['name']}: {mount['mountPath']} is not a Secret volume")
        return
    item = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    if item not in {i["path"] for i in volume.get("items", [])}:
        fail(f"{e['name']}: the Secret volume does not hold {item}")


def check_pod(docs):
    sts, c = container(docs)
    spec = sts["spec"]
    if spec["replicas"] != 1:
        fail("the StatefulSet must have exactly one replica (one identity, one store)")
    pod = spec["template"]["spec"]
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        fail("the pod must run as non-root")
    if not csc.get("readOnlyRootFilesystem"):
        fail("the root file system must be read-only")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail("privilege escalation must be off")
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        fail("every capability must be dropped")
    if pod.get("automountServiceAccountToken") is not False:
        fail("the pod needs no service-account token")
    if pod.get("enableServiceLinks") is not False:
        fail("service links must be off: STARGATE_IPFS_PORT (from a Service stargate-ipfs) stops the node")
    ports = {p["name"]: p for p in c["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != "/health" or get.get("port") not in ports:
            fail(f"{probe} must call /health on a port of the container")
    if {(p["containerPort"], p["protocol"]) for p in ports.values()} != {
        (4001, "TCP"),
        (4001, "UDP"),
        (8080, "TCP"),
        (5001, "TCP"),
    }:
        fail("the container must expose 4001 TCP and UDP, 8080 and 5001")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    for m in c.get("volumeMounts", []):
        if m["name"] not in volumes | claims:
            fail(f"volume mount {m['mountPath']} names no volume")
    if not any(m["mountPath"] == "/data" and m["name"] in claims for m in c["volumeMounts"]):
        fail("the data dir /data must be the PersistentVolumeClaim")
    return c, ports


def selects(service, labels):
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def check_services(docs, ports, api_name):
    sts = one(docs, "StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    services = [d for d in docs if d["kind"] == "Service"]
    for s in services:
        if not selects(s, pod_labels):
            fail(f"Service {s['metadata']['name']} selects no pod of the StatefulSet")
        for p in s["spec"]["ports"]:
            target = ports.get(p["targetPort"])
            if target is None or target["protocol"] != p["protocol"]:
                fail(f"Service {s['metadata']['name']} port {p['name']} targets no container port")
    api = one(docs, "Service", api_name)
    if api["spec"]["type"] != "ClusterIP":
        fail("the API Service must stay ClusterIP")
    swarm = [s for s in services if s["metadata"]["name"].endswith("-swarm")]
    if len(swarm) != 1 or {(p["port"], p["protocol"]) for p in swarm[0]["spec"]["ports"]} != {
        (4001, "TCP"),
        (4001, "UDP"),
    }:
        fail("the swarm Service must carry 4001 TCP and UDP")
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                name = path["backend"]["service"]["name"]
                if name == api_name or not name.endswith("-gateway"):
                    fail(f"Ingress routes {path['path']} to {name}: only the gateway may be")
    for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
        if sm["apiVersion"] != "monitoring.coreos.com/v1":
            fail(f"ServiceMonitor apiVersion {sm['apiVersion']}")
        chosen = [
            s
            for s in services
            if all(
                s["metadata"]["labels"].get(k) == v
                for k, v in sm["spec"]["selector"]["matchLabels"].items()
            )
        ]
        names = {p["name"] for s in chosen for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            if ep["port"] not in names or ep.get("path") != "/metrics":
                fail(f"ServiceMonitor endpoint {ep} matches no Service port serving /metrics")
        if not chosen:
            fail("the ServiceMonitor selects no Service")


def print_env(docs, secret_dir):
    """NAME=VALUE lines: the container's environment, with made-up secrets in files."""
    _, c = container(docs)
    for e in c.get("env", []):
        if "valueFrom" in e:
            print(f"{e['name']}=made-up-{e['name'].lower()}")
        elif e["name"].endswith("_FILE"):
            path = Path(secret_dir) / Path(e["value"]).name
            path.write_text("made-up secret\n")
            print(f"{e['name']}={path}")
        else:
            print(f"{e['name']}={e['value']}")


def main():
    mode, path = sys.argv[1], sys.argv[2]
    docs = load(path)
    if mode == "env":
        print_env(docs, sys.argv[3])
        return
    if mode == "config":
        for d in docs:
            if d["kind"] == "ConfigMap":
                print(d["data"]["config.toml"], end="")
        return
    env = check_env(docs, defaults_expected=mode == "default")
    _, ports = check_pod(docs)
    api_name = next(
        s["metadata"]["name"]
        for s in docs
        if s["kind"] == "Service" and s["metadata"]["labels"].get("app.kubernetes.io/component") == "api"
    )
    check_services(docs, ports, api_name)
    if mode == "production":
        if api_name != "stargate-ipfs":
            fail("production: the API Service must be stargate-ipfs (the guide's apiUrl)")
        for name in ("STARGATE_API_KEY", "STARGATE_INGEST_TOKEN_FILE", "STARGATE_STEGO_CALLBACK_SECRET_FILE"):
            if name not in env:
                fail(f"production: {name} is not set from the guide's Secret")
        kinds = {d["kind"] for d in docs}
        for kind in ("Ingress", "ServiceMonitor", "ConfigMap"):
            if kind not in kinds:
                fail(f"production: no {kind} rendered")
    if failures:
        for f in failures:
            print(f"check-rendered: {path}: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"check-rendered: {path}: {len(docs)} objects, {len(env)} variables: all consistent")


if __name__ == "__main__":
    main()
