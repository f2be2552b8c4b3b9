#!/usr/bin/env python3
"""Pass-through overhead: single-stream PUT and GET of one large object, directly against a fast backend (nginx
with WebDAV PUT) vs through the gateway (GATEWAY_PASSTHROUGH=true) in front of the same nginx.

  python3 bench/passthrough.py [--size-mib 1024] [--repeat 3]

Prints MiB/s per path (best and median of alternating runs) and the ratios of the best runs, gateway/direct
(target >= 0.8) and gateway/nginx-proxy (nginx's own proxy_pass in front of the same files: what a plain
pass-through proxy that copies bytes through user space reaches on the same machine). nginx does not check signatures; the
gateway does, so every request is SigV4-signed (UNSIGNED-PAYLOAD). curl moves the bytes on both paths.
Everything started here is stopped at the end; data lives in a temp dir (on /dev/shm when it has room, so the
disk is not what is measured).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
from pathlib import Path

import common
import s3gw  # on sys.path through common


def measure(label: str, method: str, paths: dict[str, tuple], src: Path | None, repeat: int) -> dict[str, float]:
    """Alternate the paths run by run (so load changes hit all alike); returns the best MiB/s of each."""
    runs = common.interleaved(repeat, {name: functools.partial(common.checked_transfer, f"{label} {name}", method, *path, src)
                                       for name, path in paths.items()})
    for name, speeds in runs.items():
        print(f"  {label} {name:<11} best {max(speeds):8.1f} MiB/s  median {statistics.median(speeds):8.1f}"
              f"   (runs: {common.runs(speeds)})", flush=True)
    return {name: max(speeds) for name, speeds in runs.items()}


def run_bench(args, bench: common.Bench) -> None:
    nginx = bench.nginx()
    backend = nginx.endpoint
    gw = bench.gateway(backend, "gateway", passthrough=True)
    src = bench.workdir / "object.bin"
    s3gw.write_random(src, args.size_mib << 20)
    print(f"bench: {args.size_mib} MiB object, single stream, {args.repeat} alternating runs per path; "
          f"nginx {backend}, gateway {gw.endpoint} (pass-through); data in {bench.workdir}", flush=True)
    paths = {
        "direct": (f"{backend}/bench/object", "BENCHKEY", "x"),
        "nginx-proxy": (f"{nginx.proxy_endpoint}/bench/object", "BENCHKEY", "x"),
        "gateway": (f"{gw.endpoint}/bench/object", gw.access_key, gw.secret_key),
    }
    for label in ("PUT", "GET"):
        best = measure(label, label, paths, src if label == "PUT" else None, args.repeat)
        print(f"  ratio {label} gateway/direct (best of {args.repeat}): {best['gateway'] / best['direct']:.2f}"
              f"   (target >= 0.80)")
        print(f"  ratio {label} gateway/nginx-proxy (best of {args.repeat}): "
              f"{best['gateway'] / best['nginx-proxy']:.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(args.size_mib << 20))


if __name__ == "__main__":
    sys.exit(main())
