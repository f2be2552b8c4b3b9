#!/usr/bin/env python3
"""Encryption overhead: single-stream PUT and GET of one large object through the gateway WITH encryption vs
through a gateway in pass-through mode (GATEWAY_PASSTHROUGH=true), both in front of the same fast backend (nginx
with WebDAV PUT), in one run.

  python3 bench/encrypted.py [--size-mib 1024] [--repeat 5] [--cipher aes-256-gcm|chacha20-poly1305]

Prints MiB/s per path (median of interleaved runs), the ratios encrypted/pass-through (of the medians, and the
median of the per-round ratios with its spread; goal: GET >= 0.9, issue 12's single-stream row; the PUT has no
goal: a single-part PUT must also hash the plaintext's MD5 for its ETag), and the CPU seconds per GiB of every
process of each side (its gateway, nginx, curl; user + system), which other processes' load hardly moves. From
those, what 2 shared cores allow at all: the gateway, nginx and curl all run on this machine's cores, so the
encrypted side needs at least (their CPU seconds together) / cores, and the GET ratio cannot exceed
cores x pass-through's time / that CPU (`common.print_ceiling`, which also prints the CPU the goal leaves them).
And what one stream reaches where the client and the backend run elsewhere (production): no faster than the
gateway's busiest thread runs, so the GET ratio is at most pass-through's busiest gateway thread over the encrypted
one's (`common.print_thread_bound`): what sharing a stream's work between two threads buys, which the shared cores
here hide.

Last, the encrypted PUT again with `BACKEND_UPLOAD_CHECKSUM=crc32` (aws-chunked framing and a CRC32 trailer towards
the backend, which nginx stores as it comes) against the same PUT without it: what the backend checksum costs.

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


def measure_pair(op: str, method: str, plain: tuple, enc: tuple, src: Path | None, repeat: int, gib: float,
                 nginx: common.Nginx, labels: tuple[str, str] = ("pass-through", "encrypted"),
                 ) -> tuple[list[float], list[float], list[common.Cost], list[common.Cost]]:
    """Alternates pass-through and encrypted transfers (`common.interleaved`, rotated each round) so load from other
    processes on a shared machine hits both sides alike; returns each side's MiB/s per round and each round's
    `Cost` (the CPU time of the side's gateway, of nginx and of curl). `plain`/`enc`: (gateway, url), named `labels`.
    Prints each side's MiB/s and CPU seconds per GiB per process, which that load hardly changes."""
    def side(label: str, gw, url: str):
        meter = common.CostMeter({"gateway": lambda: [gw.proc.pid], "nginx": nginx.pids})
        transfer = functools.partial(common.checked_transfer, f"{op} {label}", method, url, gw.access_key,
                                     gw.secret_key, src)
        # curl's own speed (bytes / time_total) is the side's time, so the ratio and the ceiling use one clock.
        return lambda: meter.measure(transfer, seconds=lambda speed: gib * 1024 / speed)
    results = common.interleaved(repeat, {label: side(label, gw, url)
                                          for label, (gw, url) in ((labels[0], plain), (labels[1], enc))})
    speeds, costs = {}, {}
    for label, values in results.items():
        speeds[label], costs[label] = [v[0] for v in values], [v[1] for v in values]
        print(f"  {op} {label:<13} {statistics.median(speeds[label]):9.1f} MiB/s   (runs: {common.runs(speeds[label])})",
              flush=True)
    for label in results:
        common.print_costs(f"{op} {label}", costs[label], gib, indent="    ")
    return speeds[labels[0]], speeds[labels[1]], costs[labels[0]], costs[labels[1]]


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
    put_plain, put_enc, _, _ = measure_pair("PUT", "PUT", plain_side, enc_side, src, args.repeat, gib, nginx)
    stored = (nginx.dir / "data" / "bench" / "enc").stat().st_size
    expected = size + 16 * max(1, -(-size // 65536))
    if stored != expected:
        raise s3gw.HarnessError(f"stored encrypted object has {stored} bytes, expected {expected} (ciphertext)")
    # One more encrypted PUT whose log line serve_metadata waits for: the last of the timed PUTs is what nginx stores.
    common.put_encrypted(nginx, enc, src, "enc")
    get_plain, get_enc, get_plain_costs, get_enc_costs = measure_pair("GET", "GET", plain_side, enc_side, None,
                                                                      args.repeat, gib, nginx)
    # One checked download: the encrypted GET returned the plaintext, not the stored ciphertext.
    check = bench.workdir / "check.bin"
    headers = s3gw.sigv4_headers("GET", enc_url, enc.access_key, enc.secret_key)
    cmd = ["curl", "-sS", "--http1.1", "-o", str(check), "-w", "%{http_code}", *common.header_args(headers)]
    out = subprocess.run(cmd + [enc_url], capture_output=True, text=True, timeout=600)
    if out.stdout != "200" or s3gw.sha256_file(check) != s3gw.sha256_file(src):
        raise s3gw.HarnessError(f"the encrypted GET did not return the plaintext (HTTP {out.stdout} {out.stderr})")
    check.unlink()
    for op, plain_speeds, enc_speeds, goal in (
            ("PUT", put_plain, put_enc, "no goal: a single-part PUT also hashes the plaintext's MD5 for its ETag"),
            ("GET", get_plain, get_enc, "goal >= 0.9, issue 12")):
        per_round = common.ratios(enc_speeds, plain_speeds)
        print(f"  ratio {op} encrypted/pass-through: {statistics.median(enc_speeds) / statistics.median(plain_speeds):.2f} "
              f"of medians, {statistics.median(per_round):.2f} median per round (spread {common.spread(per_round)})   ({goal})")
    common.print_ceiling("GET encrypted/pass-through", get_enc_costs, get_plain_costs, 0.9, gib)
    common.print_thread_bound("GET encrypted/pass-through", get_enc_costs, get_plain_costs, gib)
    # What BACKEND_UPLOAD_CHECKSUM=crc32 costs a streamed PUT: the ciphertext framed as aws-chunked with a CRC32
    # trailer (nginx stores the framed body as it comes; the gateway's work is what is compared).
    crc = bench.gateway(backend, "gateway-enc-crc32", passthrough=False,
                        env={"ENCRYPTION_CIPHER": args.cipher, "BACKEND_UPLOAD_CHECKSUM": "crc32"})
    crc_side = (crc, f"{crc.endpoint}/bench/enc-crc32")
    put_off, put_crc, off_costs, crc_costs = measure_pair("PUT", "PUT", enc_side, crc_side, src, args.repeat, gib, nginx,
                                                          labels=("encrypted", "CRC32 trailer"))
    framed = (nginx.dir / "data" / "bench" / "enc-crc32").read_bytes()[-64:]
    if b"x-amz-checksum-crc32:" not in framed:
        raise s3gw.HarnessError("the PUT with BACKEND_UPLOAD_CHECKSUM=crc32 sent no CRC32 trailer")
    per_round = common.ratios(put_crc, put_off)
    print(f"  ratio PUT with backend CRC32 trailer/without: {statistics.median(put_crc) / statistics.median(put_off):.2f} "
          f"of medians, {statistics.median(per_round):.2f} median per round (spread {common.spread(per_round)})   (no goal)")
    print(f"  load average at the end: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    parser.add_argument("--cipher", default=os.environ.get("BENCH_CIPHER", "aes-256-gcm"))
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(args.size_mib << 20))


if __name__ == "__main__":
    sys.exit(main())
