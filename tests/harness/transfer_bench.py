#!/usr/bin/env python3
"""Times node-to-node transfers of one file on loopback, all in one run.

  python transfer_bench.py --stargate BIN FILE [--runs 5] [--bitswap-timeout 120] [--quic]

- stargate->stargate: the file added on one `stargate daemon`, fetched by another with
  `stargate dag fetch --from PEER CID` (the `/stargate/car/1.0.0` transfer: every block
  verified and durably stored); seconds as the daemon measured the fetch.
- kubo->kubo: the file added on one Kubo v0.22 peer (tests/harness/kubo_peer.py), downloaded
  by another over Bitswap (Kubo's Download: fetched, stored, and written out to a file).
- cat stargate<-stargate: a fresh daemon connected to the first one reads the file with
  `stargate cat CID` (retrieval, which streams the DAG from a Stargate peer over the transfer;
  bytes written to /dev/null as they arrive, every block verified and cached); seconds from the
  start of `cat` to its end, and the blocks each path brought (from the daemon's metrics).
- kubo<-stargate and stargate<-kubo over Bitswap: Kubo downloading from the Stargate daemon,
  and the daemon reading (`stargate cat`) what Kubo added; "n/a" with the reason when the node
  cannot do it (yet) or it takes longer than --bitswap-timeout.

Every receiver starts empty (a fresh data dir or repo per run). Prints one JSON line:
  {"bytes": N, "runs": R, "<direction>": {"seconds": [...], "median_mb_s": x, "best_mb_s": y,
   "worst_mb_s": z, "spread": best/worst - 1, "sender_cpu_s_per_gib": c, "receiver_cpu_s_per_gib": d}
   | {"error": "..."} , ...}
MB = 10^6 bytes. CPU is each side's whole process (every thread, user + system) from just
before the transfer to just after it, per GiB moved, median over the runs; the sender is the
node holding the file, the receiver the fresh one (for `cat`, the daemon, not the CLI). Run it inside the loopback-only namespace (scripts/bench-transfer.sh does):
every node listens on 127.0.0.1 only, with no bootstrap peers, mDNS, UPnP, relay or AutoNAT.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import bench_stats
from nodes import cpu_seconds, Daemon, Failed, Kubo, stop_all

class Sample:
    """One transfer: its seconds and the CPU both sides spent on it."""

    def __init__(self, sender_pid, receiver_pid):
        bench_stats.settle()
        self.pids = (sender_pid, receiver_pid)
        self.cpu = [cpu_seconds(p) for p in self.pids]
        self.seconds = None

    def done(self, seconds):
        self.cpu = [cpu_seconds(p) - before for p, before in zip(self.pids, self.cpu)]
        self.seconds = seconds
        return self


def summary(size, samples):
    return bench_stats.summary(size, [s.seconds for s in samples],
                               {"sender": [s.cpu[0] for s in samples],
                                "receiver": [s.cpu[1] for s in samples]})


def measure(size, runs, once):
    """Runs `once()` (which returns a finished Sample) `runs` times; a failure ends the
    direction."""
    try:
        return summary(size, [once(i) for i in range(runs)])
    except (Failed, subprocess.TimeoutExpired, StopIteration) as e:
        return {"error": str(e)[-300:]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--stargate", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bitswap-timeout", type=float, default=120)
    ap.add_argument("--quic", action="store_true",
                    help="Stargate daemons reach each other over QUIC instead of TCP")
    args = ap.parse_args()
    size = os.path.getsize(args.file)
    root = tempfile.mkdtemp(prefix="transfer-bench-")
    nodes = []

    def daemon(name):
        d = Daemon(args.stargate, root, name, quic=args.quic)
        nodes.append(d)
        return d.start().wait_ready()

    def kubo(name):
        k = Kubo(root, name)
        nodes.append(k)
        return k

    def drop(node):
        node.stop()
        nodes.remove(node)
        shutil.rmtree(node.dir, ignore_errors=True)

    out = {"bytes": size, "runs": args.runs}
    try:
        src = daemon("stargate-src")
        cid = src.cli("add", "-Q", args.file).strip()
        src_addr = src.swarm_addr()
        ksrc = kubo("kubo-src")
        kcid = ksrc.call(cmd="add", path=args.file)["cid"]
        if kcid != cid:
            raise Failed(f"Kubo added {kcid}, Stargate {cid}: not the same DAG")

        def stargate_to_stargate(i):
            dst = daemon(f"stargate-dst-{i}")
            sample = Sample(src.proc.pid, dst.proc.pid)
            fetched = dst.cli("dag", "fetch", "--from", src_addr, cid)
            # "fetched CID: N blocks, B bytes in S s (X MB/s)"
            sample.done(float(fetched.split(" in ")[1].split(" s ")[0]))
            drop(dst)
            return sample

        def kubo_downloads_from(holder, addr, tag):
            """A fresh Kubo peer downloading `cid` from `holder`, reached at `addr`."""
            def once(i):
                dst = kubo(f"{tag}-{i}")
                dst.call(cmd="connect", addr=addr)
                out = os.path.join(root, f"{tag}-out-{i}")
                sample = Sample(holder.proc.pid, dst.proc.pid)
                sample.done(dst.call(cmd="download", cid=cid, dest=out,
                                     timeout=args.bitswap_timeout)["seconds"])
                drop(dst)
                os.remove(out)
                return sample
            return once

        paths = {}

        def stargate_cats_from(holder, addr, tag):
            """A fresh daemon reading `cid` with `stargate cat` from `holder`, reached at
            `addr`."""
            def once(i):
                dst = daemon(f"{tag}-{i}")
                dst.cli("swarm", "connect", addr)
                sample = Sample(holder.proc.pid, dst.proc.pid)
                start = time.perf_counter()
                with open(os.devnull, "wb") as sink:
                    dst.cli("cat", cid, stdout=sink, timeout=args.bitswap_timeout)
                sample.done(time.perf_counter() - start)
                m = dst.metrics()
                paths[tag] = {p: int(m.get(f'stargate_retrieval_blocks_total{{path="{p}"}}', 0))
                              for p in ("transfer", "bitswap")}
                drop(dst)
                return sample
            return once

        out["stargate->stargate"] = measure(size, args.runs, stargate_to_stargate)
        out["kubo->kubo"] = measure(
            size, args.runs, kubo_downloads_from(ksrc, ksrc.addr, "kubo-dst"))
        out["cat stargate<-stargate"] = measure(
            size, args.runs, stargate_cats_from(src, src_addr, "stargate-cat"))
        out["kubo<-stargate"] = measure(
            size, 1, kubo_downloads_from(src, src_addr, "kubo-from-stargate"))
        out["stargate<-kubo"] = measure(
            size, 1, stargate_cats_from(ksrc, ksrc.addr, "stargate-from-kubo"))
        for direction, tag in (("cat stargate<-stargate", "stargate-cat"),
                               ("stargate<-kubo", "stargate-from-kubo")):
            if tag in paths and "error" not in out[direction]:
                out[direction]["blocks_by_path"] = paths[tag]
    except Failed as e:
        out["error"] = str(e)
    finally:
        stop_all(nodes)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out))
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
