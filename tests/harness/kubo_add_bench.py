#!/usr/bin/env python3
"""Times Kubo v0.22's add (AddFile, Kubo's default options) on one file.

Prints one JSON line on stdout:
  {"bytes": N, "runs": R,
   "only_hash": {"seconds": [..], "cpu_seconds": [..], "median_mb_s": y,
                 "best_mb_s": x, "worst_mb_s": w, "spread": x / w - 1,
                 "add_cpu_s_per_gib": c, "median_cpu_mb_s": z},
   "stored":    {...same...}}
MB/s are 10^6 bytes per second of wall time of the AddFile call alone (node
start-up excluded); cpu_seconds is the process's user + system CPU time
during the call (all threads), so median_cpu_mb_s changes little when other
work shares the machine. Every stored run uses a fresh repo (Kubo skips blocks it
already has, so re-adding into the same repo would measure nothing); its
datastore is Kubo's default flatfs with sync on.

Run it inside the loopback-only namespace (scripts/bench-lib.sh does): the
node is configured loopback-only as in kubo_peer.py.

  python kubo_add_bench.py FILE [--runs 3] [--mode both|only-hash|stored]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_stats  # noqa: E402
import kubo_peer  # noqa: E402


def start_peer(root, name):
    repo = os.path.join(root, name)
    peer = kubo_peer.Peer(repo)
    peer.create(0, 0, "rsa")
    peer.run()
    return peer


def timed_add(peer, path, only_hash):
    bench_stats.settle()
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = peer.add(path, only_hash)["seconds"]
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def summary(size, samples):
    seconds = [s for s, _ in samples]
    cpu = [c for _, c in samples]
    out = bench_stats.summary(size, seconds, {"add": cpu})
    out["cpu_seconds"] = cpu
    out["median_cpu_mb_s"] = size / statistics.median(cpu) / 1e6
    return out


def main():
    out = kubo_peer.claim_stdout()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mode", choices=["both", "only-hash", "stored"], default="both")
    args = ap.parse_args()
    path = os.path.abspath(args.file)
    size = os.path.getsize(path)
    root = tempfile.mkdtemp(prefix="kubo-add-bench-")
    os.chdir(root)  # the library writes kubo.log into the working directory
    result = {"bytes": size, "runs": args.runs}
    try:
        if args.mode in ("both", "only-hash"):
            peer = start_peer(root, "only-hash")
            # One untimed pass warms the page cache and Go's allocator.
            peer.add(path, True)
            samples = [timed_add(peer, path, True) for _ in range(args.runs)]
            peer.close()
            result["only_hash"] = summary(size, samples)
        if args.mode in ("both", "stored"):
            samples = []
            for i in range(args.runs):
                peer = start_peer(root, f"stored-{i}")
                samples.append(timed_add(peer, path, False))
                peer.close()
                shutil.rmtree(os.path.join(root, f"stored-{i}"), ignore_errors=True)
            result["stored"] = summary(size, samples)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)
