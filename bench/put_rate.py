#!/usr/bin/env python3
"""Upload throughput of small objects: PUTs of 4 KiB and 1 MiB over keep-alive with `wrk`, against nginx directly
(WebDAV PUT), the gateway in pass-through mode and the gateway encrypting, in front of the same nginx, in one run;
each size with and without a `Content-MD5` (rclone and restic send one, the AWS CLI and boto3 do not). Rounds
interleave the sides (`common.interleaved`); prints per-side medians of req/s, each process's CPU time per request
(gateway, nginx, wrk) and the median ratios of each round with their spread, plus the load average.

Issue 12 sets no goal for uploads. What the gateway's CPU per request shows is what an encrypted upload costs on
top of forwarding one: a fresh data key and its wrap, the metadata MAC, the sealing, the MD5 of the plaintext (the
ETag; a verified Content-MD5 is used as it is) and of the ciphertext (the signed Content-MD5 the backend checks).
nginx writes every PUT to a file: at 4 KiB it, not the gateway, sets the req/s of every side.

  python3 bench/put_rate.py [--sizes 4096,1048576] [--connections 16] [--seconds 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import common
import request_rate
import s3gw  # on sys.path through common

LUA = """
wrk.method = "PUT"
wrk.headers = {{ {headers} }}
wrk.body = string.rep("x", {size})
"""


def wrk_put(url: str, headers: dict[str, str], size: int, args, workdir: Path) -> dict:
    """`wrk` PUTs of `size` bytes of "x" to `url` with `headers` (the same body and headers on every request)."""
    script = workdir / "put.lua"
    script.write_text(LUA.format(headers=", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()), size=size))
    out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.seconds}s",
                          "--latency", "-s", str(script), url], capture_output=True, text=True,
                         timeout=args.seconds + 60)
    if out.returncode != 0:
        raise s3gw.HarnessError(f"wrk failed: {out.stderr}")
    return request_rate.parse_wrk(out.stdout, url)


def run_bench(args, bench: common.Bench) -> None:
    nginx = bench.nginx(worker_connections=4096)
    plain = bench.gateway(nginx.endpoint, "gateway-plain", passthrough=True)
    enc = bench.gateway(nginx.endpoint, "gateway-enc", passthrough=False)
    print(f"bench: PUTs of {', '.join(str(s) for s in args.sizes)} bytes, keep-alive, c={args.connections}, "
          f"{args.seconds}s x {args.rounds} interleaved rounds, wrk -t{args.threads}; load average {os.getloadavg()}",
          flush=True)
    sides = {"nginx": None, "pass-through": plain, "encrypting": enc}
    for size in args.sizes:
        for md5 in (False, True):
            body_md5 = base64.b64encode(hashlib.md5(b"x" * size).digest()).decode()
            extra = {"content-length": str(size), **({"content-md5": body_md5} if md5 else {})}

            def target(name: str, gw: s3gw.Gateway | None):
                meter = common.CostMeter({**({"gateway": lambda: [gw.proc.pid]} if gw else {}), "nginx": nginx.pids},
                                         client="wrk")
                url = (gw.endpoint if gw else nginx.endpoint) + f"/bench/put-{name}-{size}"

                def run() -> dict:
                    # Signed once per round (valid within the clock skew); wrk sends the Content-Length itself.
                    headers = s3gw.sigv4_headers("PUT", url, gw.access_key, gw.secret_key, headers=extra) if gw \
                        else dict(extra)
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                    result, cost = meter.measure(lambda: wrk_put(url, headers, size, args, bench.workdir))
                    result["cost"] = cost
                    return result
                return run

            results = common.interleaved(args.rounds, {name: target(name, gw) for name, gw in sides.items()})
            print(f"  {size} bytes, {'with' if md5 else 'without'} Content-MD5:", flush=True)
            for name, r in results.items():
                per_role = {role: statistics.median(x["cost"].cpu[role] / x["requests"] * 1e6 for x in r)
                            for role in r[0]["cost"].cpu}
                print(f"    {name:<13} req/s median {statistics.median(x['rps'] for x in r):8.0f}   CPU µs/request "
                      + ", ".join(f"{role} {v:7.1f}" for role, v in per_role.items())
                      + f"   (req/s runs: {common.runs([x['rps'] for x in r])})", flush=True)
            rps = common.ratios([x["rps"] for x in results["encrypting"]], [y["rps"] for y in results["pass-through"]])
            print(f"    ratio req/s encrypting / pass-through            median {statistics.median(rps):5.2f}  "
                  f"spread {common.spread(rps)}", flush=True)
            cpu = common.ratios([y["cost"].cpu["gateway"] / y["requests"] for y in results["pass-through"]],
                                [x["cost"].cpu["gateway"] / x["requests"] for x in results["encrypting"]])
            print(f"    ratio gateway CPU/request pass-through / encrypting median {statistics.median(cpu):5.2f}  "
                  f"spread {common.spread(cpu)}", flush=True)
    print(f"  load average at the end: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[int(x) for x in os.environ.get("BENCH_SIZES", "4096,1048576").split(",")])
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "16")))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "3")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk not found (scripts/deps.sh bench installs it)", file=sys.stderr)
        return 1
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(max(args.sizes)))


if __name__ == "__main__":
    sys.exit(main())
