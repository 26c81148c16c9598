#!/usr/bin/env python3
"""Mirroring benchmarks of Stargate Node (issues 12 and 13).

  python mirror_bench.py propagation --stargate BIN [--nodes 20] [--degree 3] [--uploads 100] [--size 65536] [--gap 0]
  python mirror_bench.py catchup     --stargate BIN [--nodes 10] [--uploads 2000]
  python mirror_bench.py quiet       --stargate BIN [--nodes 10] [--seconds 60]
  python mirror_bench.py stego       --stargate BIN [--nodes 10] [--degree 3] [--uploads 100] [--size 65536] [--gap 0]

Run it inside the loopback-only namespace (scripts/bench-mirror.sh does, through bench_in_ns):
every daemon is configured as tests/src/daemon.rs's LOOPBACK_SWARM. Progress goes to stderr; the
last line on stdout is one JSON object with the figures.

propagation: `nodes` release daemons, each connected to `degree` others (a ring with chords), all
mirroring; one node at a time (round robin) adds a fresh `size`-byte file with
`add?announce=bench`, and the driver waits until every other node holds it stored and pinned,
then `gap` seconds (0: back to back, the worst case for 20 daemons sharing a few cores).
Latency per upload = the last node's `changed_ms` (the mirror record's last change, its storing, from
`/api/v1/mirror/ls`) minus the wall clock just before the add request was sent; the add itself
(import, pin, publish) is part of it. p50 / p99 / max over the uploads. RSS and CPU seconds of
the publishing and receiving daemons over the run, against an idle daemon of the same config
over the same wall time.

catchup: `nodes` daemons connected in a ring with chords; one more daemon (the late one) is
started, connected, then stopped; `uploads` small files are added and announced on the others
(round robin) and mirrored everywhere, and the network goes idle (its DHT announcements done);
the late node starts again and reconnects. Time from its
start until its mirror holds all `uploads` stored. Once with the sync protocol on (default), once
with it off (manifests only, poll interval as configured).

quiet: `nodes` daemons in a ring with chords, 200 uploads mirrored everywhere, `settle` seconds
(45: one manifest publish interval and a poll, so the manifests of the last changes are out and
read), then `seconds` of nothing new: bytes on the loopback interface (/proc/net/dev: IP packets, headers and ACKs
included, everything every node sent) per connection per minute; the same network with
mirroring and pubsub off gives what ping, identify and the DHT cost alone, and the difference is
the mirror's share (gossipsub, digests, manifests), per connection and per peer (half of it).

stego: `nodes` daemons in a ring with chords, every one mirroring stego results and making
ingestion records (callback secret and ingest token in their environment); one node at a time
(round robin) adds a fresh `size`-byte image and a small payload, then gets the signed approval
callback. Latency per callback = the latest `created_ms` of its ingestion record over all the
nodes (the publisher's included, from `/api/v1/ingestions`) minus the wall clock just before the
callback was sent; the adds come before and are not part of it. p50 / p99 / max. Target p99 <
1 s (the guide's ingest interval is 60 s).
"""

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from nodes import cpu_seconds, Daemon, Failed, log, stop_all


MIRROR_CONFIG = """[ipfs]
mirror_enabled = true
mirror_upload_enabled = true
mirror_download_enabled = true
mirror_poll_interval_sec = {poll}
mirror_publish_interval_sec = {publish}
sync_enabled = {sync}
"""


STEGO_SECRET = "bench-stego-callback-secret"
INGEST_TOKEN = "bench-ingest-token"


def daemon(binary, root, name, poll=10, publish=30, sync=True, stego=False):
    extra = MIRROR_CONFIG.format(poll=poll, publish=publish, sync=str(sync).lower())
    d = Daemon(binary, root, name, extra=extra)
    if stego:
        d.env["STARGATE_STEGO_CALLBACK_SECRET"] = STEGO_SECRET
        d.env["STARGATE_INGEST_TOKEN"] = INGEST_TOKEN
    return d


def get_json(d, path, timeout=30):
    with urllib.request.urlopen(f"http://{d.api_addr}{path}", timeout=timeout) as res:
        return json.loads(res.read())


def add_announced(d, data, kind="bench"):
    """Adds `data` through the RPC, with `announce` of `kind` unless it is None; its CID."""
    boundary = "benchboundary7d1c"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    announce = f"announce={kind}&" if kind else ""
    req = urllib.request.Request(
        f"http://{d.api_addr}/api/v0/add?{announce}quieter=true", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            lines = [json.loads(x) for x in res.read().splitlines() if x.strip()]
    except urllib.error.HTTPError as e:
        raise Failed(f"{d.name}: add: {e.code} {e.read()[:300]!r}") from e
    return lines[-1]["Hash"]


def add_file(d, data):
    """Adds `data` through the RPC; its CID."""
    return add_announced(d, data, kind=None)


def post_approval(d, image, payload, n):
    """Posts the signed approval of `image` and `payload` as the platform does
    (docs/stego-callback.md)."""
    body = json.dumps({"image_cid": image, "payload_cid": payload, "verdict": "approved",
                       "metadata": {"bench": n}}).encode()
    ts = str(int(time.time()))
    sig = "sha256=" + hmac.new(STEGO_SECRET.encode(), ts.encode() + b"." + body,
                               hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        f"http://{d.api_addr}/api/v1/stego/callback", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Stargate-Timestamp": ts,
                 "X-Stargate-Signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            if res.status != 202:
                raise Failed(f"{d.name}: callback answered {res.status}")
    except urllib.error.HTTPError as e:
        raise Failed(f"{d.name}: callback: {e.code} {e.read()[:300]!r}") from e


def ingestions(d, after):
    """The node's ingestion records after id `after` (pull API, with the token)."""
    req = urllib.request.Request(f"http://{d.api_addr}/api/v1/ingestions?after={after}&limit=1000",
                                 headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read())["records"]


def records(d):
    """The node's mirror records: {cid: record}."""
    out = {}
    for r in get_json(d, "/api/v1/mirror/ls?limit=10000")["records"]:
        out[r["cid"]] = r
    return out


def stored_count(d):
    return get_json(d, "/api/v1/mirror/status")["stored"]


def wait_until(what, check, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise Failed(f"timed out after {timeout} s waiting for {what}")


def chords(n, degree):
    """Edges of a ring with chords: every node has about `degree` neighbours."""
    edges = set()
    for i in range(n):
        edges.add(tuple(sorted((i, (i + 1) % n))))
    if degree >= 3:
        half = n // 2
        for i in range(half):
            edges.add(tuple(sorted((i, i + half))))
    for k in range(2, degree - 1):
        for i in range(n):
            edges.add(tuple(sorted((i, (i + k) % n))))
    return sorted(edges)


def connect_graph(daemons, edges):
    addrs = [d.swarm_addr() for d in daemons]
    for a, b in edges:
        daemons[a].connect(addrs[b])


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failed(f"no VmRSS for {pid}")


def lo_bytes():
    with open("/proc/net/dev", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[8])  # transmitted bytes (= received on lo)
    raise Failed("no lo in /proc/net/dev")


def wait_idle(daemons, timeout=600, quiet=5):
    """Waits until the daemons together have used less than 0.1 CPU second per second for
    `quiet` seconds in a row: longer than the 2 s a node waits after its last download before it
    announces what it mirrored in the DHT, so that work is not mistaken for idleness."""
    deadline = time.monotonic() + timeout
    last = sum(cpu_seconds(d.proc.pid) for d in daemons)
    calm = 0
    while time.monotonic() < deadline:
        time.sleep(1)
        now = sum(cpu_seconds(d.proc.pid) for d in daemons)
        calm = calm + 1 if now - last < 0.1 else 0
        if calm >= quiet:
            return
        last = now
    raise Failed(f"the daemons were still busy after {timeout} s")


def pct(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def start(daemons):
    for d in daemons:
        d.start()
    for d in daemons:
        d.wait_ready()


def last_time(nodes, what, time_on):
    """Waits until `time_on(d)` gives a time (Unix s) on every node of `nodes`; the latest.
    The times are the nodes' own records, so the driver polls gently: its requests would
    otherwise take CPU from the daemons it measures."""
    times = []
    for d in nodes:
        def found(d=d):
            t = time_on(d)
            if t is not None:
                times.append(t)
            return t is not None
        wait_until(f"{what} on {d.name}", found, 60, step=0.25)
    return max(times)


def timed_network(args, nodes, idle, rounds):
    """Runs `rounds(latencies)` over the started and connected `nodes` while sampling every
    daemon's RSS; the latency figures and the CPU and RSS of the nodes against `idle`."""
    everyone = nodes + [idle]
    cpu0 = {d.name: cpu_seconds(d.proc.pid) for d in everyone}
    t0 = time.monotonic()
    peak = {d.name: 0 for d in everyone}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for d in everyone:
                peak[d.name] = max(peak[d.name], rss_kib(d.proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    latencies = []
    try:
        rounds(latencies)
    finally:
        stop.set()
        sampler.join()
    wall = time.monotonic() - t0
    cpu = {d.name: cpu_seconds(d.proc.pid) - cpu0[d.name] for d in everyone}
    node_cpu = [cpu[d.name] for d in nodes]
    ms = [x * 1000 for x in latencies]
    return {
        "nodes": args.nodes, "degree": args.degree, "uploads": args.uploads, "size": args.size,
        "gap_s": args.gap,
        "p50_ms": round(pct(ms, 50), 1), "p99_ms": round(pct(ms, 99), 1),
        "max_ms": round(max(ms), 1), "mean_ms": round(statistics.mean(ms), 1),
        # Which uploads made the tail (index from 0, ms): a run's slow moments show here.
        "slowest": sorted(enumerate(round(m) for m in ms), key=lambda x: -x[1])[:5],
        "wall_s": round(wall, 1),
        "cpu_s_per_node_median": round(statistics.median(node_cpu), 2),
        "cpu_s_per_node_max": round(max(node_cpu), 2),
        "cpu_s_idle_node": round(cpu["idle"], 2),
        "peak_rss_kib_median": statistics.median(peak[d.name] for d in nodes),
        "peak_rss_kib_max": max(peak[d.name] for d in nodes),
        "rss_kib_idle_node": peak["idle"],
    }


def ring(args, root, stego=False):
    """`args.nodes` daemons and an idle one, started; the nodes connected in a ring with chords."""
    nodes = [daemon(args.stargate, root, f"n{i}", stego=stego) for i in range(args.nodes)]
    idle = daemon(args.stargate, root, "idle", stego=stego)
    start(nodes + [idle])
    connect_graph(nodes, chords(args.nodes, args.degree))
    time.sleep(2)  # let gossipsub build its meshes (heartbeat 1 s)
    wait_idle(nodes + [idle])
    return nodes, idle


def propagation(args, root):
    nodes, idle = [], None
    try:
        nodes, idle = ring(args, root)

        def rounds(latencies):
            for u in range(args.uploads):
                publisher = nodes[u % len(nodes)]
                data = os.urandom(args.size)
                sent = time.time()
                cid = add_announced(publisher, data)
                def stored_at(d):
                    r = records(d).get(cid)
                    return r["changed_ms"] / 1000 if r and r.get("state") == "stored" else None

                others = [d for d in nodes if d is not publisher]
                latencies.append(last_time(others, cid, stored_at) - sent)
                time.sleep(args.gap)
                if (u + 1) % 10 == 0:
                    log(f"{u + 1}/{args.uploads} uploads; last {latencies[-1] * 1000:.0f} ms")

        return timed_network(args, nodes, idle, rounds)
    finally:
        stop_all(nodes + ([idle] if idle else []))


def stego(args, root):
    nodes, idle = [], None
    try:
        nodes, idle = ring(args, root, stego=True)
        cursors = {d.name: 0 for d in nodes}

        def rounds(latencies):
            for u in range(args.uploads):
                publisher = nodes[u % len(nodes)]
                image = add_file(publisher, os.urandom(args.size))
                payload = add_file(publisher, os.urandom(256))
                sent = time.time()
                post_approval(publisher, image, payload, u)
                def made_at(d):
                    for r in ingestions(d, cursors[d.name]):
                        cursors[d.name] = r["id"]
                        if r["payload_cid"] == payload:
                            return r["created_ms"] / 1000
                    return None

                latencies.append(last_time(nodes, f"the record of {payload}", made_at) - sent)
                time.sleep(args.gap)
                if (u + 1) % 10 == 0:
                    log(f"{u + 1}/{args.uploads} callbacks; last {latencies[-1] * 1000:.0f} ms")

        return timed_network(args, nodes, idle, rounds)
    finally:
        stop_all(nodes + ([idle] if idle else []))


def catchup_once(args, root, sync):
    tag = "sync" if sync else "manifests"
    poll = args.poll
    nodes = [daemon(args.stargate, root, f"{tag}{i}", poll=poll, publish=args.publish, sync=sync)
             for i in range(args.nodes)]
    late = daemon(args.stargate, root, f"{tag}-late", poll=poll, publish=args.publish, sync=sync)
    try:
        start(nodes + [late])
        connect_graph(nodes, chords(args.nodes, 3))
        addrs = [d.swarm_addr() for d in nodes]
        late.stop()
        log(f"{tag}: adding {args.uploads} uploads while the late node is away")
        for u in range(args.uploads):
            add_announced(nodes[u % len(nodes)], f"upload {u} {os.urandom(8).hex()}".encode())
        for d in nodes:
            wait_until(f"{args.uploads} stored on {d.name}",
                       lambda d=d: stored_count(d) >= args.uploads,
                       300, step=0.5)
        # A node returns to a network that has long finished with those uploads (their DHT
        # announcements included), not into the middle of that work on this shared machine.
        wait_idle(nodes)
        log(f"{tag}: every node mirrors them; the late node comes back")
        t0 = time.monotonic()
        late.start()
        late.wait_ready()
        for a in addrs:
            late.connect(a)
        wait_until(f"{args.uploads} stored on the late node",
                   lambda: stored_count(late) >= args.uploads, 600, step=0.05)
        took = time.monotonic() - t0
        log(f"{tag}: late node whole in {took:.2f} s")
        return round(took, 2)
    finally:
        stop_all(nodes + [late])


def catchup(args, root):
    out = {"nodes": args.nodes, "uploads": args.uploads,
           "poll_interval_s": args.poll, "publish_interval_s": args.publish}
    out["sync_s"] = catchup_once(args, root, True)
    out["manifests_only_s"] = catchup_once(args, root, False)
    return out


def idle_bytes(nodes, edges, seconds, settle):
    """Bytes on lo in `seconds` of nothing new, after `settle` seconds (the last manifests of
    the changes go out and are read within one publish and one poll interval), per connection
    per minute."""
    time.sleep(settle)
    b0 = lo_bytes()
    time.sleep(seconds)
    sent = lo_bytes() - b0
    return sent, sent / len(edges) / (seconds / 60)


def quiet(args, root):
    edges = chords(args.nodes, 3)
    # The same network without mirroring or pubsub: what ping, identify and the DHT cost alone.
    base = [Daemon(args.stargate, root, f"b{i}",
                   extra="[ipfs]\nmirror_enabled = false\n[pubsub]\nenabled = false\n")
            for i in range(args.nodes)]
    try:
        start(base)
        connect_graph(base, edges)
        base_sent, base_rate = idle_bytes(base, edges, args.seconds, 5)
    finally:
        stop_all(base)
    nodes = [daemon(args.stargate, root, f"q{i}") for i in range(args.nodes)]
    try:
        start(nodes)
        connect_graph(nodes, edges)
        for u in range(200):
            add_announced(nodes[u % len(nodes)], f"quiet {u} {os.urandom(8).hex()}".encode())
        for d in nodes:
            wait_until(f"200 stored on {d.name}",
                       lambda d=d: stored_count(d) >= 200, 300, step=0.5)
        sent, rate = idle_bytes(nodes, edges, args.seconds, args.settle)
        return {"nodes": args.nodes, "connections": len(edges), "seconds": args.seconds,
                "settle": args.settle,
                "lo_bytes": sent, "lo_bytes_without_mirror": base_sent,
                "all_bytes_per_connection_per_minute": round(rate),
                "without_mirror_bytes_per_connection_per_minute": round(base_rate),
                "mirror_bytes_per_connection_per_minute": round(rate - base_rate),
                "mirror_bytes_per_peer_per_minute": round((rate - base_rate) / 2)}
    finally:
        stop_all(nodes)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["propagation", "catchup", "quiet", "stego"])
    p.add_argument("--stargate", required=True)
    p.add_argument("--nodes", type=int)
    p.add_argument("--degree", type=int, default=3)
    p.add_argument("--uploads", type=int)
    p.add_argument("--size", type=int, default=64 * 1024)
    p.add_argument("--gap", type=float, default=0.0,
                   help="propagation: seconds between one upload stored everywhere and the next")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--settle", type=int, default=45)
    p.add_argument("--poll", type=int, default=10)
    p.add_argument("--publish", type=int, default=30)
    args = p.parse_args()
    defaults = {"propagation": (20, 100), "catchup": (10, 2000), "quiet": (10, 200),
                "stego": (10, 100)}
    args.nodes = args.nodes or defaults[args.what][0]
    args.uploads = args.uploads or defaults[args.what][1]
    root = tempfile.mkdtemp(prefix="mirror-bench-")
    try:
        result = globals()[args.what](args, root)
    except Failed as e:
        result = {"error": str(e)}
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
