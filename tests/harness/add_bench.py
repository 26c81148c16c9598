#!/usr/bin/env python3
"""Times `stargate add` of one file, as kubo_add_bench.py times Kubo's.

  python add_bench.py --stargate BIN FILE [--runs 5]

Each run is one `stargate add -Q` process with no daemon (the CLI opens the store itself):
only-hash (`-n`) and stored, the stored ones each into a fresh data dir. Seconds are the
process's wall time (start-up, store, import, durable commit, exit), CPU its user + system
time. Prints one JSON line on stdout in kubo_add_bench.py's shape:
  {"bytes": N, "runs": R, "only_hash": {...bench_stats.summary...}, "stored": {...}}
Run it inside the loopback-only namespace (scripts/bench-add.sh does).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import bench_stats


def timed_add(binary, data_dir, path, only_hash):
    flags = ["-Q", "-n"] if only_hash else ["-Q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    bench_stats.settle()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([binary, "--data-dir", data_dir, "add", *flags, path], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--stargate", required=True)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    path = os.path.abspath(args.file)
    size = os.path.getsize(path)
    root = tempfile.mkdtemp(prefix="add-bench-")
    result = {"bytes": size, "runs": args.runs}
    try:
        for mode, only_hash in (("only_hash", True), ("stored", False)):
            samples = []
            for i in range(args.runs):
                data_dir = os.path.join(root, f"{mode}-{i}")
                samples.append(timed_add(args.stargate, data_dir, path, only_hash))
                shutil.rmtree(data_dir, ignore_errors=True)
            result[mode] = bench_stats.summary(size, [s for s, _ in samples],
                                               {"add": [c for _, c in samples]})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
