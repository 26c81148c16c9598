#!/usr/bin/env python3
"""Times Kubo v0.22's add (AddFile, Kubo's default options) on one file.

Prints one JSON line on stdout:
  {"bytes": N, "runs": R,
   "only_hash": {"seconds": [..], "best_mb_s": x, "median_mb_s": y},
   "stored":    {"seconds": [..], "best_mb_s": x, "median_mb_s": y}}
MB/s are 10^6 bytes per second of wall time of the AddFile call alone (node
start-up excluded). Every stored run uses a fresh repo (Kubo skips blocks it
already has, so re-adding into the same repo would measure nothing); its
datastore is Kubo's default flatfs with sync on.

Run it inside the loopback-only namespace (scripts/bench-lib.sh does): the
node is configured loopback-only as in kubo_peer.py.

  python kubo_add_bench.py FILE [--runs 3] [--mode both|only-hash|stored]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubo_peer  # noqa: E402


def start_peer(root, name):
    repo = os.path.join(root, name)
    peer = kubo_peer.Peer(repo)
    peer.create(0, 0, "rsa")
    peer.run()
    return peer


def summary(size, seconds):
    rates = [size / s / 1e6 for s in seconds]
    return {
        "seconds": seconds,
        "best_mb_s": max(rates),
        "median_mb_s": statistics.median(rates),
    }


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
            seconds = [peer.add(path, True)["seconds"] for _ in range(args.runs)]
            peer.close()
            result["only_hash"] = summary(size, seconds)
        if args.mode in ("both", "stored"):
            seconds = []
            for i in range(args.runs):
                peer = start_peer(root, f"stored-{i}")
                seconds.append(peer.add(path, False)["seconds"])
                peer.close()
                shutil.rmtree(os.path.join(root, f"stored-{i}"), ignore_errors=True)
            result["stored"] = summary(size, seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)
