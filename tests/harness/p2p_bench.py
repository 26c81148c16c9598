#!/usr/bin/env python3
"""Peer-to-peer benchmarks of Stargate Node (issue 3): idle RSS and providing.

  python p2p_bench.py rss     --stargate BIN [--peers 10] [--settle 10]
  python p2p_bench.py provide --stargate BIN [--cids 100000] [--dht 5]

Run it inside the loopback-only namespace (scripts/bench-rss.sh and
scripts/bench-provide.sh do, through bench_in_ns): every daemon is configured
as tests/src/daemon.rs's LOOPBACK_SWARM (no bootstrap, mDNS, UPnP, AutoNAT or
relays, DHT server mode, listening on 127.0.0.1 only), every Kubo peer as
kubo_peer.py's loopback_only. Progress goes to stderr; the last line on stdout
is one JSON object with the figures.

rss: VmRSS (/proc/<pid>/status) of a `stargate daemon` with an empty store,
`settle` seconds after its API answers, then `settle` seconds after it was
connected (`stargate swarm connect`) to `peers` other stargate daemons; the
same for a Kubo peer (kubo_peer.py: a Python process running Kubo v0.22's
shared library, connected to its own `peers` stargate daemons, so neither
node learns of the other). The Kubo figure is the whole process: the Python
interpreter with cffi, the Go runtime and Kubo. A bare interpreter's RSS
(`python -c`, measured in the same run) is subtracted for a second, fairer
figure. Both nodes run at the same time.

provide: a daemon whose store holds `cids` distinct pinned raw blocks (put
offline with `stargate block put --pin` in batches, before the daemon starts)
is connected to a DHT of `dht` other daemons (connected in a star around the
first); its reprovider (strategy roots) then announces every pin. Measured:
wall time from the first connect until stargate_dht_provides_total (ok and
failed) reaches `cids`, the daemon's own "reprovide done" figures, the CPU
seconds of the daemon's process (utime + stime) over that time, and the API's
response time to `id` sampled meanwhile (HTTP POST /api/v0/id every 0.2 s, and
the `stargate id` command every second), against the same samples taken idle
before the run.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from nodes import cpu_seconds, Daemon, Failed, Kubo, log, start_daemons, stop_all



def status_kib(pid, field):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise Failed(f"no {field} for pid {pid}")


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def anon_kib(pid):
    """RssAnon: the process's own memory, without the pages of mapped files (code)."""
    return status_kib(pid, "RssAnon")


def threads(pid):
    return status_kib(pid, "Threads")


def mib(kib):
    return round(kib / 1024, 1)


def bench_rss(args, root):
    nodes = []
    try:
        bare = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                stdin=subprocess.PIPE)
        stargate = Daemon(args.stargate, root, "measured").start()
        nodes.append(stargate)
        kubo = Kubo(root, "kubo")
        nodes.append(kubo)
        stargate.wait_ready()
        log(f"both nodes up; idle for {args.settle} s")
        time.sleep(args.settle)
        idle = {"stargate": rss_kib(stargate.proc.pid), "kubo": rss_kib(kubo.proc.pid),
                "python": rss_kib(bare.pid)}
        anon_idle = {"stargate": anon_kib(stargate.proc.pid), "kubo": anon_kib(kubo.proc.pid),
                     "python": anon_kib(bare.pid)}
        threads_idle = {"stargate": threads(stargate.proc.pid),
                        "kubo": threads(kubo.proc.pid)}
        bare.stdin.close()
        bare.wait()

        log(f"starting 2 x {args.peers} peer daemons")
        s_peers = start_daemons(args.stargate, root, "speer", args.peers)
        nodes += s_peers
        k_peers = start_daemons(args.stargate, root, "kpeer", args.peers)
        nodes += k_peers
        for p in s_peers:
            stargate.connect(p.swarm_addr())
        for p in k_peers:
            kubo.call(cmd="connect", addr=p.swarm_addr())
        log(f"connected; settling for {args.settle} s")
        time.sleep(args.settle)
        busy = {"stargate": rss_kib(stargate.proc.pid), "kubo": rss_kib(kubo.proc.pid)}
        anon_busy = {"stargate": anon_kib(stargate.proc.pid), "kubo": anon_kib(kubo.proc.pid)}
        peers = {"stargate": stargate.peer_count(), "kubo": len(kubo.call(cmd="peers")["peers"])}
        peer_rss = [rss_kib(p.proc.pid) for p in s_peers]
    finally:
        stop_all(nodes)

    def row(kib_s, kib_k, anon):
        net = kib_k - idle["python"]
        return {
            "stargate_anon_mib": mib(anon["stargate"]),
            "kubo_anon_mib": mib(anon["kubo"]),
            "stargate_mib": mib(kib_s),
            "kubo_mib": mib(kib_k),
            "kubo_minus_python_mib": mib(net),
            "ratio": round(kib_s / kib_k, 3),
            "ratio_minus_python": round(kib_s / net, 3),
        }

    return {
        "bench": "rss",
        "python_mib": mib(idle["python"]),
        "python_anon_mib": mib(anon_idle["python"]),
        "idle": row(idle["stargate"], idle["kubo"], anon_idle),
        "peers": {**row(busy["stargate"], busy["kubo"], anon_busy), "connected": peers,
                  "count": args.peers},
        "threads_idle": threads_idle,
        "stargate_peer_daemons_mean_mib": mib(statistics.mean(peer_rss)),
    }


def fill_store(daemon, root, count, batch):
    """`count` distinct pinned raw blocks, put offline (no daemon yet)."""
    blocks = os.path.join(root, "blocks")
    os.makedirs(blocks, exist_ok=True)
    started = time.monotonic()
    for first in range(0, count, batch):
        paths = []
        for i in range(first, min(first + batch, count)):
            path = os.path.join(blocks, str(i - first))
            with open(path, "w", encoding="ascii") as f:
                f.write(f"stargate provide benchmark block {i}\n")
            paths.append(path)
        out = daemon.cli("block", "put", "--pin", *paths).split()
        if len(out) != len(paths):
            raise Failed(f"block put returned {len(out)} CIDs for {len(paths)} blocks")
    shutil.rmtree(blocks)
    return time.monotonic() - started


def percentiles(samples):
    if not samples:
        return None
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {"n": len(s), "p50_ms": round(pick(0.5) * 1e3, 1),
            "p99_ms": round(pick(0.99) * 1e3, 1), "max_ms": round(s[-1] * 1e3, 1)}


class Sampler:
    """Times the API's `id` (HTTP every 0.2 s) and the `stargate id` command (every 1 s)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.http, self.cli, self.errors = [], [], 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(self.http_id, 0.2)),
                        threading.Thread(target=self.loop, args=(self.cli_id, 1.0))]

    def http_id(self):
        t = time.monotonic()
        self.daemon.api("id", timeout=60)
        self.http.append(time.monotonic() - t)

    def cli_id(self):
        t = time.monotonic()
        self.daemon.cli("id")
        self.cli.append(time.monotonic() - t)

    def loop(self, sample, every):
        while not self.stop.is_set():
            try:
                sample()
            except Exception:  # noqa: BLE001
                self.errors += 1
            self.stop.wait(every)

    def run(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return {"http_id": percentiles(self.http), "stargate_id": percentiles(self.cli),
                "errors": self.errors}


def provides(metrics):
    return {o: int(metrics.get(f'stargate_dht_provides_total{{outcome="{o}"}}', 0))
            for o in ("ok", "failed")}


def bench_provide(args, root):
    nodes = []
    try:
        provider = Daemon(args.stargate, root, "provider",
                          f"[routing]\nprovide_concurrency = {args.concurrency}\n")
        log(f"putting {args.cids} pinned blocks offline")
        fill_seconds = fill_store(provider, root, args.cids, args.batch)
        log(f"store filled in {fill_seconds:.1f} s; starting a DHT of {args.dht} daemons")
        dht = start_daemons(args.stargate, root, "dht", args.dht)
        nodes += dht
        for p in dht[1:]:
            p.connect(dht[0].swarm_addr())
        addrs = [p.swarm_addr() for p in dht]
        nodes.append(provider.start())
        provider.wait_ready()
        time.sleep(2)
        idle = Sampler(provider).run()
        time.sleep(args.idle_samples)
        idle = idle.finish()
        busy = Sampler(provider).run()
        cpu0, t0 = cpu_seconds(provider.proc.pid), time.monotonic()
        for a in addrs:
            provider.connect(a)
        log("connected; waiting for the reprovide")
        done, peak_rss, last = None, 0, time.monotonic()
        while time.monotonic() - t0 < args.timeout:
            counts = provides(provider.metrics())
            peak_rss = max(peak_rss, rss_kib(provider.proc.pid))
            if counts["ok"] + counts["failed"] >= args.cids:
                done = time.monotonic() - t0
                break
            if time.monotonic() - last > 10:
                log(f"{counts} after {time.monotonic() - t0:.0f} s")
                last = time.monotonic()
            time.sleep(0.2)
        cpu = cpu_seconds(provider.proc.pid) - cpu0
        busy = busy.finish()
        counts = provides(provider.metrics())
        if done is None:
            raise Failed(f"not all provided after {args.timeout} s: {counts}")
        # The reprovider logs its own run ("reprovide done ... seconds=... cpu_seconds=...").
        deadline = time.monotonic() + 10
        own = {}
        while time.monotonic() < deadline and not own:
            with open(provider.log_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "reprovide done" in line:
                        own = {k: float(v) for k, v in
                               re.findall(r"\b(provided|failed|seconds|cpu_seconds)=([\d.]+)",
                                          line)}
            time.sleep(0.5)
        # The DHT peers refresh their record gauge every 5 s (event_loop.rs TICK).
        time.sleep(6)
        peer_metrics = [p.metrics() for p in dht]
        records = [int(m.get("stargate_dht_provider_records", 0)) for m in peer_metrics]
        refused = [int(m.get("stargate_dht_provider_records_refused_total", 0))
                   for m in peer_metrics]
    finally:
        stop_all(nodes)
    return {
        "bench": "provide",
        "cids": args.cids,
        "dht_peers": args.dht,
        "concurrency": args.concurrency,
        "fill_seconds": round(fill_seconds, 1),
        "provides": counts,
        "wall_seconds": round(done, 1),
        "cids_per_second": round(args.cids / done),
        "cpu_seconds": round(cpu, 1),
        "reprovider_log": own,
        "peak_rss_mib": mib(peak_rss),
        "provider_records_held_by_dht_peers": records,
        "provider_records_refused_by_dht_peers": refused,
        "api_idle": idle,
        "api_while_providing": busy,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=["rss", "provide"])
    ap.add_argument("--stargate", required=True, help="the stargate binary (release build)")
    ap.add_argument("--peers", type=int, default=10, help="rss: peers connected to each node")
    ap.add_argument("--settle", type=float, default=10, help="rss: seconds before a sample")
    ap.add_argument("--cids", type=int, default=100_000, help="provide: pinned roots")
    ap.add_argument("--dht", type=int, default=5, help="provide: other daemons in the DHT")
    ap.add_argument("--batch", type=int, default=5_000, help="provide: blocks per block put")
    ap.add_argument("--concurrency", type=int, default=32,
                    help="provide: [routing] provide_concurrency (the default is 32)")
    ap.add_argument("--idle-samples", type=float, default=5,
                    help="provide: seconds of idle API samples before the run")
    ap.add_argument("--timeout", type=float, default=3600, help="provide: give up after")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix=f"stargate-{args.bench}-")
    try:
        result = (bench_rss if args.bench == "rss" else bench_provide)(args, root)
    finally:
        if os.environ.get("STARGATE_BENCH_KEEP"):
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
