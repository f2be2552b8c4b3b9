#!/usr/bin/env python3
"""Ranged reads of a large encrypted object (issue 12): time of a 1 MiB `Range` GET through the encrypting gateway
divided by the same range of the plaintext from nginx directly, on one object stored once. Rounds interleave nginx and
the gateway (a random 1 MiB range per round, the same for both), each side `--gets` requests per round over one
kept-alive connection, each timed by curl itself (`time_total`, so curl's process start-up is in neither side); prints
the median ratio of the rounds with its spread, the start-up-inclusive ratio earlier stops printed, and the load average.
A pass-through gateway reading the same range of the plaintext is a third interleaved side: with each side's time to
first byte (`time_starttransfer`) it tells how much of the gateway's time is the common request path and how much the
decryption, and the gateways' CPU per range (/proc) is the figure that holds up on a busy machine. nginx's own
proxy_pass (upstream keep-alive) reading the same plaintext range is a fourth side: what a plain proxy that copies
the bytes through user space takes on this machine, the floor any proxy's ratio is held to.

  python3 bench/ranges.py [--size-mib 1024] [--range-kib 1024] [--rounds 7] [--gets 10]

The encrypted object is PUT through the gateway into nginx (WebDAV), its metadata served back as bench/encrypted.py
does, and every answer is checked against the plaintext.
"""

from __future__ import annotations

import argparse
import functools
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
               out: Path) -> tuple[float, float, float]:
    """`count` sequential GETs of `first-last` in one curl process over a kept-alive connection. Returns the
    median of curl's own time per transfer (request sent to last byte; the row), the wall time per GET
    including curl's process start-up (what this bench printed before: the start-up, the same on both sides,
    pulls that ratio towards 1) and the median time to the first byte of the answer."""
    cmd = ["curl", "-sS", "--http1.1", "-w", "%{http_code} %{time_total} %{time_starttransfer}\n", *common.header_args(headers),
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
    return (statistics.median(float(line[1]) for line in lines), elapsed / count,
            statistics.median(float(line[2]) for line in lines))


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU of process `pid`'s living threads (/proc schedstat: finer than the 10 ms ticks of
    /proc stat, which one range is far below; the gateway's threads outlive a round)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def with_cpu_ns(pid: int, side):
    before = cpu_ns(pid)
    result = side()
    return result, (cpu_ns(pid) - before) / 1e9


def run_bench(args, bench: common.Bench) -> None:
    size, span = args.size_mib << 20, args.range_kib << 10
    nginx = bench.nginx(metadata=True, upstream_keepalive=16)
    gw = bench.gateway(nginx.endpoint, "gateway-enc", passthrough=False)
    pt = bench.gateway(nginx.endpoint, "gateway-pt", passthrough=True)
    src = bench.workdir / "object.bin"
    s3gw.write_random(src, size)
    enc_url = common.put_encrypted(nginx, gw, src)
    plain_url = nginx.store(src, "plain")
    pt_url = f"{pt.endpoint}/bench/plain"
    proxy_url = plain_url.replace(nginx.endpoint, nginx.proxy_endpoint, 1)
    print(f"bench: {args.range_kib} KiB ranges of a {args.size_mib} MiB encrypted object, {args.rounds} interleaved "
          f"rounds x {args.gets} GETs; load average {os.getloadavg()}", flush=True)
    rng = random.Random(12)
    check = bench.workdir / "range.bin"
    # name -> (URL, gateway or None); each round runs them in common.rotation's order (the first side moves one
    # place each round, as common.interleaved does), each checked against the plaintext.
    sides = {"nginx direct": (plain_url, None), "nginx proxy": (proxy_url, None), "pass-through": (pt_url, pt),
             "gateway (enc)": (enc_url, gw)}
    times: dict[str, list[float]] = {name: [] for name in sides}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    ttfb: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name, (_, gateway) in sides.items() if gateway}
    with open(src, "rb") as f:
        for round_index in range(args.rounds):
            first = rng.randrange(0, size - span)
            last = first + span - 1
            f.seek(first)
            expected = f.read(span)
            for name in common.rotation(list(sides), round_index):
                url, gateway = sides[name]
                headers = s3gw.sigv4_headers("GET", url, gateway.access_key, gateway.secret_key) if gateway else {}
                gets = functools.partial(timed_gets, url, first, last, headers, args.gets, check)
                if gateway:
                    (per_transfer, wall, first_byte), used = with_cpu_ns(gateway.proc.pid, gets)
                    cpu[name].append(used / args.gets)
                else:
                    per_transfer, wall, first_byte = gets()
                times[name].append(per_transfer)
                walls[name].append(wall)
                ttfb[name].append(first_byte)
                if check.read_bytes() != expected:
                    raise s3gw.HarnessError(f"{name}: bytes {first}-{last} are not the plaintext")
    nginx_t, proxy_t, pt_t, gw_t = (times[name] for name in sides)
    nginx_wall, gw_wall = walls["nginx direct"], walls["gateway (enc)"]
    ratios = common.ratios(gw_t, nginx_t)
    for name, times in [("nginx direct", nginx_t), ("nginx proxy", proxy_t), ("pass-through", pt_t), ("gateway (enc)", gw_t)]:
        ms = [t * 1e3 for t in times]
        print(f"  {name:<14} median {statistics.median(ms):8.2f} ms per range, first byte after "
              f"{statistics.median(ttfb[name]) * 1e3:.2f} ms   (runs: {common.runs(ms, '{:.2f}')})")
    for name, used in cpu.items():
        print(f"  {name:<14} gateway CPU per range: median {statistics.median(used) * 1e6:6.0f} us (/proc schedstat; "
              f"runs: {common.runs([u * 1e6 for u in used])})")
    print(f"  ratio time gateway / nginx direct, per transfer: median {statistics.median(ratios):.2f}  spread "
          f"{common.spread(ratios)}  (goal <= 1.5)")
    proxy_ratios = common.ratios(proxy_t, nginx_t)
    print(f"  (nginx proxy_pass / nginx direct, per transfer: {statistics.median(proxy_ratios):.2f}  spread "
          f"{common.spread(proxy_ratios)}: a plain proxy's own ratio)")
    # Opening 1 MiB with AES-256-GCM alone (0.21 ms at `openssl speed`'s 5 GB/s here) takes as long as nginx
    # direct's whole answer, so the row is also printed against the plain proxy, which decrypts nothing.
    vs_proxy = common.ratios(gw_t, proxy_t)
    print(f"  ratio time gateway / nginx proxy_pass, per transfer: median {statistics.median(vs_proxy):.2f}  spread "
          f"{common.spread(vs_proxy)}")
    pt_ratios = common.ratios(pt_t, nginx_t)
    print(f"  (pass-through / nginx direct, per transfer: {statistics.median(pt_ratios):.2f}  spread {common.spread(pt_ratios)})")
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
