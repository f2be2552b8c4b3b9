#!/usr/bin/env python3
"""Many concurrent large encrypted GETs (issue 12): `--streams` parallel GETs of a `--size-mib` encrypted object
through the encrypting gateway vs the same number of GETs of the plaintext from nginx directly, aggregate MiB/s.
Rounds interleave the two (curl --parallel); prints the median ratio of the rounds with its spread, the load average.

  python3 bench/concurrent_gets.py [--streams 64] [--size-mib 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE))

import encrypted  # noqa: E402
import passthrough  # noqa: E402
import s3gw  # noqa: E402


def parallel_gets(url: str, headers: dict[str, str], streams: int) -> float:
    """Seconds for `streams` GETs of `url` at once (one curl, --parallel)."""
    cmd = ["curl", "-sS", "--http1.1", "--parallel", "--parallel-max", str(streams), "-w", "%{http_code}\n"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    for _ in range(streams):
        cmd += ["-o", "/dev/null", url]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.split() != ["200"] * streams:
        raise s3gw.HarnessError(f"parallel GETs of {url}: {done.stdout.split()[:5]} {done.stderr[:500]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = parser.parse_args()
    size = args.size_mib << 20

    workdir = passthrough.pick_workdir(3 * size)
    ndir = workdir / "nginx"
    ndir.mkdir(parents=True, exist_ok=True)
    (ndir / "meta.conf").write_text("")
    passthrough.NGINX_CONF = encrypted.NGINX_CONF.replace("worker_connections 256;", "worker_connections 4096;")
    nginx, gw = None, None
    try:
        nginx, backend, *_ = passthrough.start_nginx(workdir)
        gw = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-enc", require_ready=False,
                                extra_env={"GATEWAY_PASSTHROUGH": "false", "LOG_LEVEL": "warn"}, name="gateway-enc")
        src = workdir / "object.bin"
        src.write_bytes(os.urandom(size))
        enc_url = f"{gw.endpoint}/bench/enc"
        _, code = passthrough.curl("PUT", enc_url, gw.access_key, gw.secret_key, src)
        if code not in (200, 201, 204):
            raise s3gw.HarnessError(f"PUT {enc_url}: HTTP {code}")
        encrypted.serve_metadata(ndir, nginx, backend, "/bench/enc")
        shutil.copyfile(src, ndir / "data" / "bench" / "plain")
        plain_url = f"{backend}/bench/plain"
        print(f"bench: {args.streams} concurrent GETs of a {args.size_mib} MiB object, {args.rounds} interleaved rounds; "
              f"load average {os.getloadavg()}", flush=True)
        total_mib = args.streams * args.size_mib
        direct, gateway, ratios = [], [], []
        for _ in range(args.rounds):
            a = total_mib / parallel_gets(plain_url, {}, args.streams)
            headers = s3gw.sigv4_headers("GET", enc_url, gw.access_key, gw.secret_key)
            b = total_mib / parallel_gets(enc_url, headers, args.streams)
            direct.append(a)
            gateway.append(b)
            ratios.append(b / a)
        print(f"  nginx direct   median {statistics.median(direct):8.1f} MiB/s  (runs: {', '.join('%.0f' % v for v in direct)})")
        print(f"  gateway (enc)  median {statistics.median(gateway):8.1f} MiB/s  (runs: {', '.join('%.0f' % v for v in gateway)})")
        print(f"  ratio MiB/s gateway / nginx direct: median {statistics.median(ratios):.2f}  spread "
              f"{min(ratios):.2f}-{max(ratios):.2f}  (goal >= 0.7)")
        print(f"  load average at the end: {os.getloadavg()}")
        return 0
    except s3gw.HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        if gw:
            print(gw.log_tail(), file=sys.stderr)
        return 1
    finally:
        if gw:
            try:
                gw.terminate()
            except s3gw.HarnessError as exc:
                print(f"bench: {exc}", file=sys.stderr)
        passthrough.stop_nginx(nginx)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
