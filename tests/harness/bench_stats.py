"""What every throughput benchmark reports about its runs (MB = 10^6 bytes)."""

import os
import statistics


def settle():
    """Flushes what earlier runs left dirty in the page cache, so that no run pays for the
    write-back of the one before (one source of runs 30-40 % apart)."""
    os.sync()


def summary(size, seconds, cpu):
    """`seconds`: wall time of each run moving `size` bytes; `cpu`: {side: CPU-seconds of each
    run}. The median, best and worst MB/s, the spread (best / worst - 1: how far runs of the
    same thing drift apart) and each side's median CPU-seconds per GiB."""
    rates = [size / s / 1e6 for s in seconds]
    out = {"seconds": seconds, "median_mb_s": statistics.median(rates),
           "best_mb_s": max(rates), "worst_mb_s": min(rates),
           "spread": max(rates) / min(rates) - 1}
    gib = size / (1 << 30)
    for side, values in cpu.items():
        out[f"{side}_cpu_s_per_gib"] = statistics.median(values) / gib
    return out
