#!/usr/bin/env python3
"""Encryption overhead: single-stream PUT and GET of one large object through the gateway WITH encryption vs
through a gateway in pass-through mode (GATEWAY_PASSTHROUGH=true), both in front of the same fast backend (nginx
with WebDAV PUT), in one run.

  python3 bench/encrypted.py [--size-mib 1024] [--repeat 5] [--cipher aes-256-gcm|chacha20-poly1305]

Prints MiB/s per path (median of interleaved runs), the ratios encrypted/pass-through (of the medians, and the
median of the per-round ratios with its spread; goals: GET >= 0.9, issue 12's single-stream row; PUT >= 0.70, the
earlier target — a single-part PUT must hash the plaintext's MD5 for its ETag), and each gateway's CPU seconds per
GiB (user + system, from /proc), which other processes' load hardly moves.

nginx stores bodies but not request headers, so on its own it would serve the encrypted object without its
`x-amz-meta-s3eg-*` metadata (and the gateway would pass the ciphertext through as a plain object). The bench
therefore logs the metadata headers of the encrypted PUTs (an nginx access log of just those headers) and, before
the GETs, reloads nginx with `add_header` lines that return the last PUT's metadata for that one URL, so the
encrypted GETs really verify and decrypt (bench/common.py: `Nginx(metadata=True)`, `Nginx.serve_metadata`).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
from pathlib import Path

import common
import s3gw  # on sys.path through common


def measure_pair(op: str, method: str, plain: tuple, enc: tuple, src: Path | None, repeat: int,
                 gib: float) -> tuple[list[float], list[float]]:
    """Alternates pass-through and encrypted transfers (`common.interleaved`: plain, enc, enc, plain, ...) so load from other processes
    on a shared machine hits both sides alike; returns each side's MiB/s per round. `plain`/`enc`: (gateway, url).
    Also prints each gateway's CPU seconds per GiB moved, which that load hardly changes."""
    results = common.interleaved(repeat, {
        label: common.with_cpu(gw.proc.pid, functools.partial(
            common.checked_transfer, f"{op} {label}", method, url, gw.access_key, gw.secret_key, src))
        for label, (gw, url) in (("pass-through", plain), ("encrypted", enc))})
    out = []
    for label, values in results.items():
        speeds, cpu = [v[0] for v in values], [v[1] / gib for v in values]
        med = statistics.median(speeds)
        print(f"  {op} {label:<13} {med:9.1f} MiB/s   (runs: {common.runs(speeds)});  gateway CPU "
              f"{statistics.median(cpu):.2f} s/GiB (runs: {common.runs(cpu, '{:.2f}')})", flush=True)
        out.append(speeds)
    return out[0], out[1]


def run_bench(args, bench: common.Bench) -> None:
    size = args.size_mib << 20
    nginx = bench.nginx(metadata=True)
    backend = nginx.endpoint
    plain = bench.gateway(backend, "gateway-plain", passthrough=True)
    enc = bench.gateway(backend, "gateway-enc", passthrough=False, env={"ENCRYPTION_CIPHER": args.cipher})
    src = bench.workdir / "object.bin"
    s3gw.write_random(src, size)
    print(f"bench: {args.size_mib} MiB object, single stream, median of {args.repeat}; nginx {backend}; "
          f"gateways {plain.endpoint} (pass-through), {enc.endpoint} (encrypted, {args.cipher}); data in {bench.workdir}",
          flush=True)
    plain_url, enc_url = f"{plain.endpoint}/bench/plain", f"{enc.endpoint}/bench/enc"
    plain_side, enc_side = (plain, plain_url), (enc, enc_url)
    gib = size / (1 << 30)
    put_plain, put_enc = measure_pair("PUT", "PUT", plain_side, enc_side, src, args.repeat, gib)
    stored = (nginx.dir / "data" / "bench" / "enc").stat().st_size
    expected = size + 16 * max(1, -(-size // 65536))
    if stored != expected:
        raise s3gw.HarnessError(f"stored encrypted object has {stored} bytes, expected {expected} (ciphertext)")
    # One more encrypted PUT whose log line serve_metadata waits for: the last of the timed PUTs is what nginx stores.
    common.put_encrypted(nginx, enc, src, "enc")
    get_plain, get_enc = measure_pair("GET", "GET", plain_side, enc_side, None, args.repeat, gib)
    # One checked download: the encrypted GET returned the plaintext, not the stored ciphertext.
    check = bench.workdir / "check.bin"
    headers = s3gw.sigv4_headers("GET", enc_url, enc.access_key, enc.secret_key)
    cmd = ["curl", "-sS", "--http1.1", "-o", str(check), "-w", "%{http_code}", *common.header_args(headers)]
    out = subprocess.run(cmd + [enc_url], capture_output=True, text=True, timeout=600)
    if out.stdout != "200" or s3gw.sha256_file(check) != s3gw.sha256_file(src):
        raise s3gw.HarnessError(f"the encrypted GET did not return the plaintext (HTTP {out.stdout} {out.stderr})")
    check.unlink()
    for op, plain_speeds, enc_speeds, goal in (("PUT", put_plain, put_enc, "target >= 0.70"),
                                               ("GET", get_plain, get_enc, "goal >= 0.9, issue 12")):
        per_round = common.ratios(enc_speeds, plain_speeds)
        print(f"  ratio {op} encrypted/pass-through: {statistics.median(enc_speeds) / statistics.median(plain_speeds):.2f} "
              f"of medians, {statistics.median(per_round):.2f} median per round (spread {common.spread(per_round)})   ({goal})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    parser.add_argument("--cipher", default=os.environ.get("BENCH_CIPHER", "aes-256-gcm"))
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(args.size_mib << 20))


if __name__ == "__main__":
    sys.exit(main())
