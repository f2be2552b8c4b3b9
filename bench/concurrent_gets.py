#!/usr/bin/env python3
"""Many concurrent large encrypted GETs (issue 12): `--streams` parallel GETs of a `--size-mib` encrypted object
through the encrypting gateway vs the same number of GETs of the plaintext from nginx directly, aggregate MiB/s.
Rounds interleave the two (curl --parallel); prints the median ratio of the rounds with its spread, the load average.
nginx's own proxy_pass (upstream keep-alive) serving the plaintext is a third interleaved side: what a plain proxy that
copies every byte through user space reaches on the same cores, for reading the ratio.

  python3 bench/concurrent_gets.py [--streams 64] [--size-mib 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import common
import s3gw  # on sys.path through common


def parallel_gets(url: str, headers: dict[str, str], streams: int) -> float:
    """Seconds for `streams` GETs of `url` at once (one curl, --parallel)."""
    cmd = ["curl", "-sS", "--http1.1", "--parallel", "--parallel-max", str(streams), "-w", "%{http_code}\n",
           *common.header_args(headers)]
    for _ in range(streams):
        cmd += ["-o", "/dev/null", url]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.split() != ["200"] * streams:
        raise s3gw.HarnessError(f"parallel GETs of {url}: {done.stdout.split()[:5]} {done.stderr[:500]}")
    return elapsed


def run_bench(args, bench: common.Bench) -> None:
    nginx = bench.nginx(metadata=True, worker_connections=4096, upstream_keepalive=args.streams)
    gw = bench.gateway(nginx.endpoint, "gateway-enc", passthrough=False)
    src = bench.workdir / "object.bin"
    s3gw.write_random(src, args.size_mib << 20)
    enc_url = common.put_encrypted(nginx, gw, src)
    plain_url = nginx.store(src, "plain")
    proxy_url = plain_url.replace(nginx.endpoint, nginx.proxy_endpoint, 1)
    print(f"bench: {args.streams} concurrent GETs of a {args.size_mib} MiB object, {args.rounds} interleaved rounds; "
          f"load average {os.getloadavg()}", flush=True)
    total_mib = args.streams * args.size_mib
    mibs = common.interleaved(args.rounds, {
        "direct": lambda: total_mib / parallel_gets(plain_url, {}, args.streams),
        "gateway": common.with_cpu(gw.proc.pid, lambda: total_mib / parallel_gets(
            enc_url, s3gw.sigv4_headers("GET", enc_url, gw.access_key, gw.secret_key), args.streams)),
        # Last, so that the gateway runs next to nginx direct, the pair its ratio compares (rounds rotate the order).
        "proxy": lambda: total_mib / parallel_gets(proxy_url, {}, args.streams),
    })
    direct = mibs["direct"]
    gateway = [speed for speed, _ in mibs["gateway"]]
    cpu = [seconds / (total_mib / 1024) for _, seconds in mibs["gateway"]]
    ratios = common.ratios(gateway, direct)
    print(f"  nginx direct   median {statistics.median(direct):8.1f} MiB/s  (runs: {common.runs(direct)})")
    print(f"  nginx proxy    median {statistics.median(mibs['proxy']):8.1f} MiB/s  (runs: {common.runs(mibs['proxy'])})")
    print(f"  gateway (enc)  median {statistics.median(gateway):8.1f} MiB/s  (runs: {common.runs(gateway)})")
    print(f"  gateway CPU    median {statistics.median(cpu):8.2f} s/GiB  (runs: {common.runs(cpu, '{:.2f}')}; "
          "user + system, hardly moved by other load)")
    print(f"  ratio MiB/s gateway / nginx direct: median {statistics.median(ratios):.2f}  spread "
          f"{common.spread(ratios)}  (goal >= 0.7)")
    proxy = common.ratios(mibs["proxy"], direct)
    print(f"  (nginx proxy_pass / nginx direct: median {statistics.median(proxy):.2f}  spread {common.spread(proxy)}: "
          "a plain proxy's own ratio)")
    print(f"  load average at the end: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(3 * (args.size_mib << 20)))


if __name__ == "__main__":
    sys.exit(main())
