#!/usr/bin/env python3
"""Memory after a burst (issue 12: "memory returns to near its resting level after a burst"). One encrypting gateway
in front of nginx: its resting RSS after a few requests, then `--rounds` bursts, each of `--streams` concurrent GETs
of a `--size-mib` encrypted object followed by `--seconds` of 4 KiB GETs from `wrk` at `--connections`. During each
burst the gateway's RSS and threads are sampled; after it, the bench waits until the burst's threads have exited
(the pool lets an idle thread go after 10 s) and prints RSS then. Prints, per round: peak RSS, threads at the peak,
RSS and threads once the burst is over, and that RSS divided by the resting RSS; then the last round's ratio.

Memory is not timing: load from other processes changes how fast the burst runs, not how much it keeps afterwards.

  python3 bench/memory.py [--rounds 3] [--streams 64] [--size-mib 16] [--connections 256] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import common
import s3gw  # on sys.path through common
from concurrent_gets import parallel_gets
from request_rate import proc_stats, wrk

#: How long the bench waits at most for the burst's threads to exit (pool idle exit 10 s, plus the loop's trim).
SETTLE_SECONDS = 30


class Sampler:
    """Samples a process's RSS and thread count every 20 ms on a thread, keeping the highest RSS seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self.peak_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            threads, rss = proc_stats(self.pid)
            if rss > self.peak_rss:
                self.peak_rss, self.peak_threads = rss, threads
            self._stop.wait(0.02)


def settle(pid: int, resting_threads: int) -> tuple[int, int, float]:
    """Waits (bench only, at most SETTLE_SECONDS) until the thread count is back at most at `resting_threads` and
    RSS has not changed for 3 s; returns (threads, RSS KiB, seconds waited)."""
    started = time.monotonic()
    last, stable_since = None, started
    while True:
        threads, rss = proc_stats(pid)
        now = time.monotonic()
        if rss != last:
            last, stable_since = rss, now
        if threads <= resting_threads and now - stable_since >= 3:
            return threads, rss, now - started
        if now - started > SETTLE_SECONDS:
            return threads, rss, now - started
        time.sleep(0.5)


def run_bench(args, bench: common.Bench) -> None:
    nginx = bench.nginx(metadata=True, worker_connections=4096)
    gw = bench.gateway(nginx.endpoint, "gateway-enc", passthrough=False)
    pid = gw.proc.pid
    large = bench.workdir / "large.bin"
    s3gw.write_random(large, args.size_mib << 20)
    large_url = common.put_encrypted(nginx, gw, large, key="large")
    small = bench.workdir / "small.bin"
    s3gw.write_random(small, 4096)
    small_url = common.put_encrypted(nginx, gw, small, key="small")
    for url in (large_url, small_url):  # every path warmed once: resting means after first use, not before
        common.checked_transfer("GET", "GET", url, gw.access_key, gw.secret_key, None)
    threads0, rss0, waited = settle(pid, resting_threads=10**6)
    print(f"bench: {args.rounds} bursts of {args.streams} x {args.size_mib} MiB encrypted GETs + {args.seconds}s of "
          f"4 KiB GETs at c={args.connections}; load average {os.getloadavg()}", flush=True)
    print(f"  resting: RSS {rss0 / 1024:6.1f} MiB, {threads0} threads", flush=True)
    after = []
    for round_ in range(1, args.rounds + 1):
        with Sampler(pid) as sampler:
            headers = s3gw.sigv4_headers("GET", large_url, gw.access_key, gw.secret_key)
            parallel_gets(large_url, headers, args.streams)
            headers = s3gw.sigv4_headers("GET", small_url, gw.access_key, gw.secret_key)
            rate = wrk(small_url, headers, args.connections, args.seconds, 2, bench.workdir)["rps"]
        threads, rss, waited = settle(pid, resting_threads=threads0)
        after.append(rss / rss0)
        print(f"  burst {round_}: peak RSS {sampler.peak_rss / 1024:6.1f} MiB with {sampler.peak_threads} threads "
              f"({rate:.0f} req/s); {waited:4.1f}s later RSS {rss / 1024:6.1f} MiB, {threads} threads, "
              f"{rss / rss0:.2f} x resting", flush=True)
    print(f"  RSS after the last burst / resting: {after[-1]:.2f}  (all bursts: {common.runs(after, '{:.2f}')}; "
          f"median {statistics.median(after):.2f}; goal: near 1, not climbing from burst to burst)")
    print(f"  load average at the end: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(3 * (args.size_mib << 20)))


if __name__ == "__main__":
    sys.exit(main())
