#!/usr/bin/env python3
"""Payload verification cost: single-stream PUT of one large object through the ENCRYPTING gateway with each way a
client can send its body, in front of the same fast backend (nginx with WebDAV PUT), in one run:

  unsigned   x-amz-content-sha256: UNSIGNED-PAYLOAD (nothing to verify; the baseline)
  signed     a signed hex SHA-256 of the body (the gateway hashes every byte)
  chunked    STREAMING-AWS4-HMAC-SHA256-PAYLOAD, 64 KiB chunks (a SHA-256 and an HMAC per chunk)
  trailer    STREAMING-UNSIGNED-PAYLOAD-TRAILER with an x-amz-checksum-crc32 trailer (boto3/aws CLI over https)

  make bench-auth      (or: python3 bench/auth_put.py [--size-mib 1024] [--repeat 5])

Every round runs the four modes back to back (interleaved, so load from other processes hits all alike); the
bodies are framed and signed once up front (the requests stay within the 15-minute clock skew). Prints MiB/s per
mode (median and range over the rounds) and each mode's ratio to `unsigned`, computed per round (median and
range). Goals: signed >= 0.80, trailer >= 0.95.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import zlib
from pathlib import Path

import common
import s3gw  # on sys.path through common

MODES = ("unsigned", "signed", "chunked", "trailer")
GOALS = {"signed": 0.80, "trailer": 0.95}


def write_framed(src: Path, dst: Path, url: str, access: str, secret: str, mode: str, crc: str | None) -> dict[str, str]:
    """Frames `src` as aws-chunked into `dst` (streamed, 64 KiB chunks); returns the request headers."""
    size = src.stat().st_size
    # s3gw.aws_chunked_put frames in memory; the bench streams the same framing to a file.
    headers, _ = s3gw.aws_chunked_put(url, access, secret, b"", mode=mode,
                                      trailer=("x-amz-checksum-crc32", crc) if crc else None,
                                      extra_headers={"x-amz-decoded-content-length": str(size)})
    signed = mode == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    amz_date = headers["x-amz-date"]
    scope = f"{amz_date[:8]}/{s3gw.REGION}/s3/aws4_request"
    key = s3gw._signing_key(secret, amz_date[:8], s3gw.REGION)
    previous = headers["authorization"].rsplit("Signature=", 1)[1]
    empty = hashlib.sha256(b"").hexdigest()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while True:
            data = fin.read(64 << 10)
            head = f"{len(data):x}"
            if signed:
                to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, empty, hashlib.sha256(data).hexdigest()])
                previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
                head += f";chunk-signature={previous}"
            fout.write(head.encode() + b"\r\n" + data + (b"\r\n" if data else b""))
            if not data:
                break
        fout.write((f"x-amz-checksum-crc32:{crc}\r\n" if crc else "").encode() + b"\r\n")
    return headers


def curl_put(url: str, headers: dict[str, str], body: Path) -> float:
    cmd = ["curl", "-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code} %{speed_upload}", "-H", "Expect:",
           *common.header_args(headers), "-T", str(body), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise s3gw.HarnessError(f"curl PUT {url} failed: {out.stderr}")
    code, speed = out.stdout.split()
    if code not in ("200", "201", "204"):
        raise s3gw.HarnessError(f"PUT {url}: HTTP {code}")
    return float(speed) / (1 << 20)


def run_bench(args, bench: common.Bench) -> None:
    nginx = bench.nginx()
    backend = nginx.endpoint
    gw = bench.gateway(backend, "gateway", passthrough=False, env={"ENCRYPTION_PASSWORD": "bench-password-0123456789"})
    src = bench.workdir / "object.bin"
    crc = 0
    sha = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(args.size_mib):
            block = os.urandom(1 << 20)
            f.write(block)
            crc = zlib.crc32(block, crc)
            sha.update(block)
    urls = {m: f"{gw.endpoint}/bench/{m}" for m in MODES}
    bodies = {"unsigned": src, "signed": src, "chunked": bench.workdir / "chunked.bin", "trailer": bench.workdir / "trailer.bin"}
    requests = {
        "unsigned": s3gw.sigv4_headers("PUT", urls["unsigned"], gw.access_key, gw.secret_key, payload_hash="UNSIGNED-PAYLOAD"),
        "signed": s3gw.sigv4_headers("PUT", urls["signed"], gw.access_key, gw.secret_key, payload_hash=sha.hexdigest()),
        "chunked": write_framed(src, bodies["chunked"], urls["chunked"], gw.access_key, gw.secret_key,
                                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", None),
        "trailer": write_framed(src, bodies["trailer"], urls["trailer"], gw.access_key, gw.secret_key,
                                "STREAMING-UNSIGNED-PAYLOAD-TRAILER", base64.b64encode(crc.to_bytes(4, "big")).decode()),
    }
    load = os.getloadavg()
    print(f"bench: {args.size_mib} MiB PUT through the encrypting gateway, {args.repeat} interleaved rounds; "
          f"nginx {backend}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    speeds: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(args.repeat):
        for m in MODES:
            speeds[m].append(curl_put(urls[m], requests[m], bodies[m]))
        print(f"  round {r + 1}: " + "  ".join(f"{m} {speeds[m][-1]:7.1f}" for m in MODES) + " MiB/s", flush=True)
    for m in MODES:
        s = speeds[m]
        print(f"  {m:<9} median {statistics.median(s):7.1f} MiB/s  (range {common.spread(s, '{:.0f}')})")
    for m in MODES[1:]:
        ratios = common.ratios(speeds[m], speeds["unsigned"])
        goal = f"   (goal >= {GOALS[m]:.2f})" if m in GOALS else ""
        print(f"  ratio {m}/unsigned: median {statistics.median(ratios):.2f}  (range {common.spread(ratios)}){goal}")
    load = os.getloadavg()
    print(f"  load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    args = parser.parse_args()
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir((args.size_mib << 20) * 2))


if __name__ == "__main__":
    sys.exit(main())
