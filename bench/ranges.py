#!/usr/bin/env python3
"""Ranged reads of a large encrypted object (issue 12): time of a 1 MiB `Range` GET through the encrypting gateway
divided by the same range of the plaintext from nginx directly, on one object stored once. Rounds interleave nginx and
the gateway (a random 1 MiB range per round, the same for both), each side `--gets` requests per round over one
kept-alive connection, each timed by curl itself (`time_total`, so curl's process start-up is in neither side); prints
the median ratio of the rounds with its spread, the start-up-inclusive ratio earlier stops printed, and the load average.

  python3 bench/ranges.py [--size-mib 1024] [--range-kib 1024] [--rounds 7] [--gets 10]

The encrypted object is PUT through the gateway into nginx (WebDAV), its metadata served back as bench/encrypted.py
does, and every answer is checked against the plaintext.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common
import s3gw  # on sys.path through common


def timed_gets(url: str, first: int, last: int, headers: dict[str, str], count: int,
               out: Path) -> tuple[float, float]:
    """`count` sequential GETs of `first-last` in one curl process over a kept-alive connection. Returns the
    median of curl's own time per transfer (request sent to last byte; the row) and the wall time per GET
    including curl's process start-up (what this bench printed before: the start-up, the same on both sides,
    pulls that ratio towards 1)."""
    cmd = ["curl", "-sS", "--http1.1", "-w", "%{http_code} %{time_total}\n", *common.header_args(headers),
           "-H", f"Range: bytes={first}-{last}"]
    for i in range(count):
        cmd += ["-o", str(out) if i == 0 else "/dev/null", url]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    lines = [line.split() for line in done.stdout.splitlines()]
    codes = [line[0] for line in lines]
    if done.returncode != 0 or codes != ["206"] * count:
        raise s3gw.HarnessError(f"GET {url} bytes={first}-{last}: {codes} {done.stderr}")
    return statistics.median(float(line[1]) for line in lines), elapsed / count


def run_bench(args, bench: common.Bench) -> None:
    size, span = args.size_mib << 20, args.range_kib << 10
    nginx = bench.nginx(metadata=True)
    gw = bench.gateway(nginx.endpoint, "gateway-enc", passthrough=False)
    src = bench.workdir / "object.bin"
    s3gw.write_random(src, size)
    enc_url = common.put_encrypted(nginx, gw, src)
    plain_url = nginx.store(src, "plain")
    print(f"bench: {args.range_kib} KiB ranges of a {args.size_mib} MiB encrypted object, {args.rounds} interleaved "
          f"rounds x {args.gets} GETs; load average {os.getloadavg()}", flush=True)
    rng = random.Random(12)
    check = bench.workdir / "range.bin"
    nginx_t, gw_t, nginx_wall, gw_wall = [], [], [], []
    with open(src, "rb") as f:
        for _ in range(args.rounds):
            first = rng.randrange(0, size - span)
            last = first + span - 1
            f.seek(first)
            expected = f.read(span)
            per_transfer, wall = timed_gets(plain_url, first, last, {}, args.gets, check)
            nginx_t.append(per_transfer)
            nginx_wall.append(wall)
            headers = s3gw.sigv4_headers("GET", enc_url, gw.access_key, gw.secret_key)
            per_transfer, wall = timed_gets(enc_url, first, last, headers, args.gets, check)
            gw_t.append(per_transfer)
            gw_wall.append(wall)
            if check.read_bytes() != expected:
                raise s3gw.HarnessError(f"the gateway's bytes {first}-{last} are not the plaintext")
    ratios = common.ratios(gw_t, nginx_t)
    ms = [t * 1e3 for t in nginx_t], [t * 1e3 for t in gw_t]
    print(f"  nginx direct   median {statistics.median(ms[0]):8.2f} ms per range   (runs: {common.runs(ms[0], '{:.2f}')})")
    print(f"  gateway (enc)  median {statistics.median(ms[1]):8.2f} ms per range   (runs: {common.runs(ms[1], '{:.2f}')})")
    print(f"  ratio time gateway / nginx direct, per transfer: median {statistics.median(ratios):.2f}  spread "
          f"{common.spread(ratios)}  (goal <= 1.5)")
    wall = common.ratios(gw_wall, nginx_wall)
    print(f"  (with curl's start-up in both sides, as earlier stops printed: {statistics.median(wall):.2f}  spread "
          f"{common.spread(wall)}; nginx {statistics.median(nginx_wall) * 1e3:.2f} ms, gateway "
          f"{statistics.median(gw_wall) * 1e3:.2f} ms per GET)")
    print(f"  load average at the end: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--range-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "7")))
    parser.add_argument("--gets", type=int, default=10)
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(3 * (args.size_mib << 20)))


if __name__ == "__main__":
    sys.exit(main())
