#!/usr/bin/env python3
"""Cost of exact listing sizes for multipart objects: ListObjectsV2 of N multipart objects through an encrypting
gateway, with a cold cache (a freshly started gateway: every `-N` entry costs its part-header reads,
`MultipartLocator`) and a warm one (the same listing again: no reads), against the same listing through a
pass-through gateway (GATEWAY_PASSTHROUGH=true), in one run on one backend (Ceph RGW by default, or moto).

  python3 bench/listing.py [--objects 1000] [--rounds 5] [--backend ceph|moto]

Rounds interleave pass-through, cold and warm listings (a new encrypting gateway per round), so load from other
processes hits all three alike; printed: median seconds per listing with the spread (min-max), the ratios to
pass-through, and the backend requests of one listing of each kind, counted by a small forwarding proxy in a
separate, untimed pass (it would add its own latency to the timed ones).

The objects are two-part multipart objects in the gateway's multipart layout (FORMAT.md §9: part 1 of one 64 KiB
chunk, part 2 of 1000 bytes; the uniform case, two 36-byte reads per entry). They are written through the
encrypting gateway when it implements multipart uploads; otherwise (an older gateway) straight to the backend
with the same layout: real part headers and metadata markers, random segment bytes. A listing reads only part
headers, so its cost is the same. Parts below S3's 5 MiB minimum need a backend that allows them: the bench sets
moto's S3_UPLOAD_PART_MIN_SIZE and Ceph's rgw_multipart_min_part_size for its own backend.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import common
import s3gw  # on sys.path through common

CHUNK = 65536
PART1 = CHUNK          # plaintext bytes of part 1: one chunk
PART2 = 1000           # plaintext bytes of the last part
PASSWORD = "bench-listing-password"


def sealed_length(plaintext: int) -> int:
    """L(P) of FORMAT.md §6: P plus a 16-byte tag per chunk (one for an empty segment)."""
    return plaintext + 16 * max(1, -(-plaintext // CHUNK))


def part_body(number: int, plaintext: int, filler: bytes) -> bytes:
    """A part as the gateway stores it (FORMAT.md §9): 36-byte header, then a segment of L(P) bytes."""
    header = b"s3eg" + bytes([1]) + b"P" + b"\x00\x00" + struct.pack(">IQ", number, plaintext) + os.urandom(16)
    return header + filler[:sealed_length(plaintext)]


def request_kinds(requests: list[s3gw.ForwardedRequest]) -> dict[str, int]:
    """How many requests of each method (`GET ranged` for a GET with a Range) the backend received."""
    counts: dict[str, int] = {}
    for r in requests:
        kind = r.method + (" ranged" if "range" in r.headers else "")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def list_all(gw: s3gw.Gateway, bucket: str, prefix: str) -> list[tuple[str, int, str]]:
    """Every (key, size, etag) under `prefix` with signed ListObjectsV2 requests (pages of 1000)."""
    entries: list[tuple[str, int, str]] = []
    token = None
    while True:
        query = f"list-type=2&max-keys=1000&prefix={urllib.parse.quote(prefix, safe='')}"
        if token:
            query += "&continuation-token=" + urllib.parse.quote(token, safe="")
        url = f"{gw.endpoint}/{bucket}?{query}"
        status, _, body = s3gw.http_request("GET", url, headers=s3gw.sigv4_headers("GET", url, gw.access_key, gw.secret_key),
                                            timeout=300)
        if status != 200:
            raise s3gw.HarnessError(f"listing through {gw.endpoint}: HTTP {status} {body[:300]!r}")
        text = body.decode()
        for block in re.findall(r"<Contents>(.*?)</Contents>", text, re.S):
            key = re.search(r"<Key>(.*?)</Key>", block).group(1)
            size = int(re.search(r"<Size>(\d+)</Size>", block).group(1))
            etag = re.search(r"<ETag>(.*?)</ETag>", block).group(1)
            entries.append((key, size, etag))
        match = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", text)
        if "<IsTruncated>true</IsTruncated>" not in text or not match:
            return entries
        token = match.group(1)


def timed_listing(gw: s3gw.Gateway, bucket: str, count: int, size: int) -> float:
    started = time.perf_counter()
    entries = list_all(gw, bucket, "mp/")
    elapsed = time.perf_counter() - started
    if len(entries) != count:
        raise s3gw.HarnessError(f"{gw.endpoint} listed {len(entries)} objects, expected {count}")
    wrong = [e for e in entries if e[1] != size]
    if wrong:
        raise s3gw.HarnessError(f"{gw.endpoint} listed {len(wrong)} sizes other than {size}, e.g. {wrong[:3]}")
    return elapsed


def write_objects(args, backend: s3gw.Backend, enc: s3gw.Gateway, bucket: str) -> str:
    """N two-part multipart objects under mp/: through the gateway when it supports multipart, else on the backend."""
    plain1, plain2 = os.urandom(PART1), os.urandom(PART2)
    gw_client = enc.client(max_pool_connections=16)
    try:
        upload = gw_client.create_multipart_upload(Bucket=bucket, Key="mp/probe")
        gw_client.abort_multipart_upload(Bucket=bucket, Key="mp/probe", UploadId=upload["UploadId"])
        via_gateway = True
    except gw_client.exceptions.ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 501:
            raise
        via_gateway = False
    raw = s3gw.make_client(backend.endpoint, backend.access_key, backend.secret_key, max_pool_connections=16)
    filler = os.urandom(sealed_length(PART1))

    def one(index: int) -> None:
        key = f"mp/{index:06d}"
        if via_gateway:
            client, parts, metadata = gw_client, (plain1, plain2), {}
        else:
            client = raw
            parts = (part_body(1, PART1, filler), part_body(2, PART2, filler))
            metadata = {"s3eg-version": "2", "s3eg-layout": "multipart"}
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata)["UploadId"]
        etags = [client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
                 for n, body in ((1, parts[0]), (2, parts[1]))]
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": n + 1, "ETag": tag} for n, tag in enumerate(etags)]})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(args.objects)))
    return "through the encrypting gateway" if via_gateway else "on the backend in the gateway's layout (no multipart in this gateway)"


def allow_small_parts(backend: s3gw.Backend) -> None:
    if backend.name == "ceph":
        conf = backend.workdir / "ceph.conf"
        if not conf.exists():
            confs = list(backend.workdir.rglob("ceph.conf"))
            conf = confs[0] if confs else conf
        out = subprocess.run(["ceph", "-c", str(conf), "config", "set", "client.rgw.0", "rgw_multipart_min_part_size", "1"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise s3gw.HarnessError(f"could not lower Ceph's multipart minimum part size: {out.stderr}")
        time.sleep(2)  # the monitor pushes the change to radosgw


def start_enc(bench: common.Bench, backend_endpoint: str, backend: s3gw.Backend, name: str) -> s3gw.Gateway:
    return bench.gateway(backend_endpoint, name, passthrough=False, env={"ENCRYPTION_PASSWORD": PASSWORD},
                         access_key=backend.access_key, secret_key=backend.secret_key)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def run_bench(args, bench: common.Bench) -> None:
    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    backend = bench.track(s3gw.start_backend(args.backend, bench.workdir / args.backend))
    allow_small_parts(backend)
    bucket = "bench-listing"
    backend.client().create_bucket(Bucket=bucket)
    plain = bench.gateway(backend.endpoint, "gw-plain", passthrough=True,
                          access_key=backend.access_key, secret_key=backend.secret_key)
    writer = start_enc(bench, backend.endpoint, backend, "gw-writer")
    started = time.monotonic()
    how = write_objects(args, backend, writer, bucket)
    print(f"bench: {args.objects} two-part multipart objects ({PART1}+{PART2} bytes) written {how} in "
          f"{time.monotonic() - started:.0f} s; backend {args.backend} {backend.endpoint}", flush=True)
    plain_size = PART1 + PART2
    stored_size = 2 * 36 + sealed_length(PART1) + sealed_length(PART2)

    # Backend requests per listing, counted once through the forwarding proxy (untimed).
    proxy = bench.track(s3gw.RecordingProxy(backend.endpoint))
    counted = start_enc(bench, proxy.start(), backend, "gw-counted")
    proxy.take()
    timed_listing(counted, bucket, args.objects, plain_size)
    cold_requests = request_kinds(proxy.take())
    timed_listing(counted, bucket, args.objects, plain_size)
    warm_requests = request_kinds(proxy.take())
    bench.stop(counted)

    times: dict[str, list[float]] = {"pass-through": [], "encrypted cold": [], "encrypted warm": []}
    for _ in range(args.rounds):
        enc = start_enc(bench, backend.endpoint, backend, "gw-enc")
        times["pass-through"].append(timed_listing(plain, bucket, args.objects, stored_size))
        times["encrypted cold"].append(timed_listing(enc, bucket, args.objects, plain_size))
        times["encrypted warm"].append(timed_listing(enc, bucket, args.objects, plain_size))
        bench.stop(enc)
    base = statistics.median(times["pass-through"])
    print(f"ListObjectsV2 of {args.objects} multipart objects, median of {args.rounds} interleaved rounds:")
    for label, values in times.items():
        ratio = statistics.median(values) / base
        print(f"  {label:<15} {spread(values)}   x{ratio:.2f} of pass-through", flush=True)
    per_entry = (statistics.median(times["encrypted cold"]) - base) / args.objects * 1000
    print(f"  cold cost per multipart entry: {per_entry:.2f} ms")
    fmt = lambda c: ", ".join(f"{v} {k}" for k, v in sorted(c.items())) or "none"  # noqa: E731
    print(f"  backend requests per listing: pass-through 1 list per page; encrypted cold {fmt(cold_requests)}; "
          f"encrypted warm {fmt(warm_requests)}")
    print("uptime after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=int(os.environ.get("BENCH_OBJECTS", "1000")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    parser.add_argument("--backend", choices=["ceph", "moto"], default=os.environ.get("BENCH_BACKEND", "ceph"))
    args = parser.parse_args()
    os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", "1")  # read by moto_server at start
    # On disk, not /dev/shm: the backend's data lives here.
    return common.run(lambda bench: run_bench(args, bench), Path(tempfile.mkdtemp(prefix="s3gw-bench-listing-")))


if __name__ == "__main__":
    sys.exit(main())
