#!/usr/bin/env python3
"""Ranged reads of a large encrypted object (issue 12): time of a 1 MiB `Range` GET through the encrypting gateway
divided by the same range of the plaintext from nginx directly, on one object stored once. Rounds interleave nginx and
the gateway (a random 1 MiB range per round, the same for both), each side `--gets` requests per round; prints the
median ratio of the rounds with its spread and the load average.

  python3 bench/ranges.py [--size-mib 1024] [--range-kib 1024] [--rounds 7] [--gets 10]

The encrypted object is PUT through the gateway into nginx (WebDAV), its metadata served back as bench/encrypted.py
does, and every answer is checked against the plaintext.
"""

from __future__ import annotations

import argparse
import os
import random
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


def timed_gets(url: str, first: int, last: int, headers: dict[str, str], count: int, out: Path) -> float:
    """Seconds per request over `count` sequential GETs of `first-last` (one curl process, kept-alive connection)."""
    cmd = ["curl", "-sS", "--http1.1", "-w", "%{http_code}\n"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd += ["-H", f"Range: bytes={first}-{last}"]
    for i in range(count):
        cmd += ["-o", str(out) if i == 0 else "/dev/null", url]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    codes = done.stdout.split()
    if done.returncode != 0 or codes != ["206"] * count:
        raise s3gw.HarnessError(f"GET {url} bytes={first}-{last}: {codes} {done.stderr}")
    return elapsed / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--range-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "7")))
    parser.add_argument("--gets", type=int, default=10)
    args = parser.parse_args()
    size, span = args.size_mib << 20, args.range_kib << 10

    workdir = passthrough.pick_workdir(3 * size)
    ndir = workdir / "nginx"
    ndir.mkdir(parents=True, exist_ok=True)
    (ndir / "meta.conf").write_text("")
    passthrough.NGINX_CONF = encrypted.NGINX_CONF
    nginx, gw = None, None
    try:
        nginx, backend, *_ = passthrough.start_nginx(workdir)
        gw = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-enc", require_ready=False,
                                extra_env={"GATEWAY_PASSTHROUGH": "false", "LOG_LEVEL": "warn"}, name="gateway-enc")
        src = workdir / "object.bin"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        enc_url = f"{gw.endpoint}/bench/enc"
        _, code = passthrough.curl("PUT", enc_url, gw.access_key, gw.secret_key, src)
        if code not in (200, 201, 204):
            raise s3gw.HarnessError(f"PUT {enc_url}: HTTP {code}")
        encrypted.serve_metadata(ndir, nginx, backend, "/bench/enc")
        plain_dir = ndir / "data" / "bench"
        shutil.copyfile(src, plain_dir / "plain")
        plain_url = f"{backend}/bench/plain"
        print(f"bench: {args.range_kib} KiB ranges of a {args.size_mib} MiB encrypted object, {args.rounds} interleaved "
              f"rounds x {args.gets} GETs; load average {os.getloadavg()}", flush=True)
        rng = random.Random(12)
        check = workdir / "range.bin"
        nginx_t, gw_t, ratios = [], [], []
        with open(src, "rb") as f:
            for _ in range(args.rounds):
                first = rng.randrange(0, size - span)
                last = first + span - 1
                f.seek(first)
                expected = f.read(span)
                a = timed_gets(plain_url, first, last, {}, args.gets, check)
                headers = s3gw.sigv4_headers("GET", enc_url, gw.access_key, gw.secret_key)
                b = timed_gets(enc_url, first, last, headers, args.gets, check)
                if check.read_bytes() != expected:
                    raise s3gw.HarnessError(f"the gateway's bytes {first}-{last} are not the plaintext")
                nginx_t.append(a)
                gw_t.append(b)
                ratios.append(b / a)
        print(f"  nginx direct   median {statistics.median(nginx_t) * 1e3:8.2f} ms per range   "
              f"(runs: {', '.join('%.2f' % (t * 1e3) for t in nginx_t)})")
        print(f"  gateway (enc)  median {statistics.median(gw_t) * 1e3:8.2f} ms per range   "
              f"(runs: {', '.join('%.2f' % (t * 1e3) for t in gw_t)})")
        print(f"  ratio time gateway / nginx direct: median {statistics.median(ratios):.2f}  spread "
              f"{min(ratios):.2f}-{max(ratios):.2f}  (goal <= 1.5)")
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
