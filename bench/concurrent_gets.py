#!/usr/bin/env python3
"""Many concurrent large encrypted GETs (issue 12): `--streams` parallel GETs of a `--size-mib` encrypted object
through the encrypting gateway vs the same number of GETs of the plaintext from nginx directly, aggregate MiB/s.
Rounds interleave the two (curl --parallel); prints the median ratio of the rounds with its spread, the load average.
nginx's own proxy_pass (upstream keep-alive) serving the plaintext is a third interleaved side: what a plain proxy that
copies every byte through user space reaches on the same cores, for reading the ratio.

Each side's CPU seconds per GiB per process (gateway, nginx, curl; user + system) are printed too, and from them
what the cores allow at all: curl, nginx and the gateway share this machine's cores, so the gateway's side needs at
least (their CPU seconds together) / cores, and its ratio cannot exceed cores x nginx direct's time / that CPU
(`common.print_ceiling`, which also prints the CPU the goal leaves them; the same for nginx's proxy_pass).

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
    gib = total_mib / 1024
    # Every side's CPU: nginx (backend, and the proxy on the proxy side), curl, and the gateway on its side.
    meters = {"direct": common.CostMeter({"nginx": nginx.pids}),
              "gateway": common.CostMeter({"gateway": lambda: [gw.proc.pid], "nginx": nginx.pids}),
              "proxy": common.CostMeter({"nginx": nginx.pids})}
    urls = {"direct": (plain_url, {}), "proxy": (proxy_url, {}), "gateway": (enc_url, None)}

    def side(name: str):
        def run():
            url, headers = urls[name]
            if headers is None:
                headers = s3gw.sigv4_headers("GET", url, gw.access_key, gw.secret_key)
            return meters[name].measure(lambda: parallel_gets(url, headers, args.streams), seconds=lambda s: s)
        return run
    # The gateway last, so that it runs next to nginx direct, the pair its ratio compares (rounds rotate the order).
    results = common.interleaved(args.rounds, {name: side(name) for name in ("direct", "gateway", "proxy")})
    costs = {name: [cost for _, cost in values] for name, values in results.items()}
    mibs = {name: [total_mib / cost.seconds for cost in values] for name, values in costs.items()}
    direct, gateway = mibs["direct"], mibs["gateway"]
    ratios = common.ratios(gateway, direct)
    print(f"  nginx direct   median {statistics.median(direct):8.1f} MiB/s  (runs: {common.runs(direct)})")
    print(f"  nginx proxy    median {statistics.median(mibs['proxy']):8.1f} MiB/s  (runs: {common.runs(mibs['proxy'])})")
    print(f"  gateway (enc)  median {statistics.median(gateway):8.1f} MiB/s  (runs: {common.runs(gateway)})")
    for name, label in (("direct", "nginx direct"), ("proxy", "nginx proxy"), ("gateway", "gateway (enc)")):
        common.print_costs(label, costs[name], gib)
    print(f"  ratio MiB/s gateway / nginx direct: median {statistics.median(ratios):.2f}  spread "
          f"{common.spread(ratios)}  (goal >= 0.7)")
    proxy = common.ratios(mibs["proxy"], direct)
    print(f"  (nginx proxy_pass / nginx direct: median {statistics.median(proxy):.2f}  spread {common.spread(proxy)}: "
          "a plain proxy's own ratio)")
    common.print_ceiling("gateway / nginx direct", costs["gateway"], costs["direct"], 0.7, gib)
    common.print_ceiling("nginx proxy_pass / nginx direct", costs["proxy"], costs["direct"], 0.7, gib)
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
