#!/usr/bin/env python3
"""Encrypted multipart uploads and reads (issue 7 §2), against bench/multipart_backend.py (a fast S3 backend that
moves bodies with sendfile and keeps no MD5s, so the gateway is what is measured):

1. **throughput**: a `--size-mib` object (default 1024) uploaded as a multipart upload of `--part-mib` parts
   (`--concurrency` at a time, curl, UNSIGNED-PAYLOAD) and downloaded as parallel ranged GETs of the same size,
   through an encrypting gateway and through a pass-through gateway, interleaved (plain, enc, plain, enc, …);
   median MiB/s per side and the ratio encrypted/pass-through (goal >= 0.7). The encrypted download is checked
   against the source once. Each part is sent as the AWS SDKs and CLI send it by default: with
   `x-amz-checksum-crc32` (base64 of the part's big-endian CRC32, computed before timing) and no Content-MD5, on
   both sides. Both gateways verify the CRC32 as the part streams (neither forwards the header: the gateway
   consumes checksum headers in either mode); the encrypting one then answers the part's listed ETag instead of
   computing an MD5. That is the row ("upload, parts with CRC32"). The default run also uploads the same parts without any
   checksum (as s3cmd does), for which the encrypting gateway computes each part's plaintext MD5 for its ETag,
   so both costs show; `--part-checksum crc32|none` runs only one of them. Each upload prints CPU s/GiB per
   process and the ratio without CompleteMultipartUpload (the bench backend concatenates the parts then).
2. **memory**: 8 parts of `--rss-part-mib` MiB (default 512) uploaded in parallel to one encrypted upload of a
   fresh gateway (the backend drops them); the gateway's peak RSS (VmHWM) and its RSS before (goal < 128 MiB).
   The same for a pass-through gateway, for comparison.
3. **requests per ranged GET** into a 100-part object (parts of 1 MiB, and of 1 MiB + 1: not chunk multiples):
   backend requests of a HEAD and of ranged GETs on a fresh gateway (cold) and afterwards (warm), and of a
   listing followed by a GET (the geometry cache is shared).

  python3 bench/multipart.py [--size-mib 1024] [--part-mib 16] [--concurrency 4] [--repeat 5] [--rss-part-mib 512]
                             [--only throughput,memory,requests] [--part-checksum crc32|none]

Everything started here is stopped at the end; data lives in a temp dir (on /dev/shm when it has room).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib
from pathlib import Path

import common
import s3gw  # on sys.path through common

MIB = 1 << 20
BUCKET = "bench"


class Backend:
    def __init__(self, workdir: Path) -> None:
        self.port = s3gw.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log = open(workdir / "backend.log", "wb")
        self.proc = subprocess.Popen([sys.executable, str(common.BENCH / "multipart_backend.py"), "--port", str(self.port),
                                      "--dir", str(workdir / "backend")], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if s3gw.http_request("GET", self.endpoint + "/__stats", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise s3gw.HarnessError("bench backend did not start; see backend.log")
            time.sleep(0.1)

    def stats(self, reset: bool = True) -> dict[str, int]:
        status, _, body = s3gw.http_request("POST" if reset else "GET", self.endpoint + "/__stats", body=b"")
        if status != 200:
            raise s3gw.HarnessError(f"backend stats: HTTP {status}")
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Side:
    """One gateway and the signed requests the bench sends it."""

    def __init__(self, label: str, gw: s3gw.Gateway) -> None:
        self.label, self.gw = label, gw
        #: Wall seconds of the last CompleteMultipartUpload (the bench backend concatenates the parts then, on one
        #: thread, whichever gateway is in front: a cost both sides share, which the bench reports apart).
        self.last_complete = 0.0

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        url = self.gw.endpoint + path
        payload = hashlib.sha256(body).hexdigest()
        signed = s3gw.sigv4_headers(method, url, self.gw.access_key, self.gw.secret_key, payload_hash=payload, headers=headers)
        status, hdrs, data = s3gw.http_request(method, url, headers=signed, body=body if method in ("PUT", "POST") else None,
                                               timeout=600)
        return status, hdrs, data

    def curl(self, method: str, path: str, src: Path | None = None, extra: dict[str, str] | None = None,
             out: str = "/dev/null") -> dict[str, str]:
        """One transfer with curl; returns the response headers (lower-cased), raises unless 2xx."""
        url = self.gw.endpoint + path
        headers = dict(extra or {})
        if src is not None:
            headers["content-length"] = str(src.stat().st_size)
        signed = s3gw.sigv4_headers(method, url, self.gw.access_key, self.gw.secret_key, headers=headers)
        cmd = ["curl", "-sS", "--http1.1", "-o", out, "-D", "-", "-H", "Expect:"]
        for k, v in signed.items():
            if k != "content-length":
                cmd += ["-H", f"{k}: {v}"]
        for k, v in (extra or {}).items():
            if k.lower() not in signed:
                cmd += ["-H", f"{k}: {v}"]
        cmd += (["-T", str(src)] if src is not None else []) + (["-X", method] if method not in ("GET", "PUT") else []) + [url]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        lines = res.stdout.replace("\r", "").split("\n")
        status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        if res.returncode != 0 or not 200 <= status < 300:
            raise s3gw.HarnessError(f"curl {method} {url}: HTTP {status} {res.stderr.strip()} {lines[:1]}")
        return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}

    def multipart_upload(self, key: str, parts: list[Path], concurrency: int, checksums: list[str] | None = None) -> str:
        """Uploads `parts`; with `checksums`, part n carries `x-amz-checksum-crc32: checksums[n - 1]`."""
        status, _, body = self.request("POST", f"/{BUCKET}/{key}?uploads=")
        if status != 200:
            raise s3gw.HarnessError(f"{self.label}: CreateMultipartUpload answered {status}: {body[:300]!r}")
        upload = re.search(rb"<UploadId>([^<]+)</UploadId>", body).group(1).decode()
        quoted = urllib.parse.quote(upload, safe="")

        def put(n: int) -> tuple[int, str]:
            extra = {"x-amz-checksum-crc32": checksums[n - 1]} if checksums else None
            headers = self.curl("PUT", f"/{BUCKET}/{key}?partNumber={n}&uploadId={quoted}", src=parts[n - 1], extra=extra)
            return n, headers["etag"]

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            etags = dict(pool.map(put, range(1, len(parts) + 1)))
        xml = "<CompleteMultipartUpload>" + "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
                                                     for n in sorted(etags)) + "</CompleteMultipartUpload>"
        started = time.monotonic()
        status, _, body = self.request("POST", f"/{BUCKET}/{key}?uploadId={quoted}", body=xml.encode())
        self.last_complete = time.monotonic() - started
        if status != 200 or b"<Error>" in body:
            raise s3gw.HarnessError(f"{self.label}: CompleteMultipartUpload answered {status}: {body[:300]!r}")
        return upload

    def ranged_download(self, key: str, size: int, piece: int, concurrency: int) -> None:
        def get(first: int) -> None:
            self.curl("GET", f"/{BUCKET}/{key}", extra={"Range": f"bytes={first}-{min(first + piece, size) - 1}"})

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(get, range(0, size, piece)))


def start(bench: common.Bench, backend: Backend, name: str, passthrough_mode: bool) -> s3gw.Gateway:
    return bench.gateway(backend.endpoint, name, passthrough=passthrough_mode,
                         env={"ENCRYPTION_PASSWORD": "bench-password-0123456789"})


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (what it cost, whatever else runs on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat (idle and iowait are not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    return (total - values[3] - values[4]) / CLOCK_TICKS, total / CLOCK_TICKS


class CPUMeter:
    """CPU seconds spent during one operation by the gateway, the backend, the curl clients (waited children of this
    process) and the whole machine: per GiB they hardly move with load, unlike MiB/s."""

    def __init__(self, gateway: int, backend: int) -> None:
        self.pids = {"gateway": gateway, "backend": backend}

    def __enter__(self) -> "CPUMeter":
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        children = os.times()
        self.start_clients = children.children_user + children.children_system
        self.start_machine = machine_busy()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self.t0
        self.seconds = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        children = os.times()
        self.seconds["clients"] = children.children_user + children.children_system - self.start_clients
        busy, total = machine_busy()
        # Share of all cores busy (from anything: other users of the machine included).
        self.machine_busy = (busy - self.start_machine[0]) / max(total - self.start_machine[1], 1e-9)


def split(src: Path, part: int, into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(src, "rb") as f:
        n = 0
        while chunk := f.read(part):
            n += 1
            p = into / f"{n:05d}"
            p.write_bytes(chunk)
            paths.append(p)
    return paths


def crc32_b64(path: Path) -> str:
    """The `x-amz-checksum-crc32` value of a file: base64 of its big-endian CRC32."""
    return base64.b64encode(zlib.crc32(path.read_bytes()).to_bytes(4, "big")).decode()


UPLOAD_TITLES = {
    "crc32": "upload, parts with CRC32 (SDK default)",
    "none": "upload, parts without checksum (gateway computes each part's MD5 for its ETag)",
}


def report_upload(title: str, size_mib: int, meters: dict[str, list[CPUMeter]]) -> None:
    """One upload row: MiB/s and CPU s/GiB per side, the ratios, and the same without CompleteMultipartUpload."""
    print(f"  {title}:")
    report_speeds("upload", size_mib, meters)
    # The upload's wall time includes CompleteMultipartUpload, in which the bench backend copies the parts into one
    # file on a single thread (about half the 2 cores idle): the same for both sides, so it pulls the ratio towards
    # 1. Real backends (S3, Ceph RGW) do not copy on Complete; the ratio of the parts alone is the gateway's.
    complete = {label: [m.complete for m in ms] for label, ms in meters.items()}
    parts_only = {label: [m.wall - m.complete for m in meters[label]] for label in complete}
    print(f"    Complete (backend concatenates): pass-through {statistics.median(complete['pass-through']):.2f} s, "
          f"encrypted {statistics.median(complete['encrypted']):.2f} s (medians); parts only: "
          + ", ".join(f"{label} {statistics.median(size_mib / t for t in parts_only[label]):.1f} MiB/s" for label in parts_only)
          + f"; parts-only ratio {statistics.median(common.ratios(parts_only['pass-through'], parts_only['encrypted'])):.2f}"
          " (median of per-round ratios)", flush=True)


def report_speeds(op: str, size_mib: int, meters: dict[str, list[CPUMeter]]) -> None:
    times = {label: [m.wall for m in ms] for label, ms in meters.items()}
    speeds = {}
    for label in ("pass-through", "encrypted"):
        runs = [size_mib / t for t in times[label]]
        speeds[label] = statistics.median(runs)
        print(f"    {op:<8} {label:<13} {speeds[label]:8.1f} MiB/s   (runs: {common.runs(runs)})")
        gib = size_mib / 1024
        cpu = {name: statistics.median(m.seconds[name] / gib for m in meters[label]) for name in ("gateway", "backend", "clients")}
        busy = statistics.median(m.machine_busy for m in meters[label])
        print(f"             CPU s/GiB: gateway {cpu['gateway']:.2f}, backend {cpu['backend']:.2f}, curl {cpu['clients']:.2f}; "
              f"machine busy {busy:.0%} of {os.cpu_count()} cores (medians)")
    # Each round's pair ran back to back, so the per-round ratio is the one least moved by load changes.
    paired = statistics.median(common.ratios(times["pass-through"], times["encrypted"]))
    print(f"    ratio {op} encrypted/pass-through: {speeds['encrypted'] / speeds['pass-through']:.2f} (of medians), "
          f"{paired:.2f} (median of per-round ratios)   (goal >= 0.70)", flush=True)


def bench_throughput(args, bench: common.Bench, backend: Backend) -> None:
    workdir = bench.workdir
    size = args.size_mib * MIB
    src = workdir / "object.bin"
    s3gw.write_random(src, size)
    parts = split(src, args.part_mib * MIB, workdir / "parts")
    plain = Side("pass-through", start(bench, backend, "gw-plain", True))
    enc = Side("encrypted", start(bench, backend, "gw-enc", False))
    try:
        for side in (plain, enc):
            side.request("PUT", f"/{BUCKET}")
        kinds = [args.part_checksum] if args.part_checksum else ["crc32", "none"]
        checksums = {"crc32": [crc32_b64(p) for p in parts], "none": None}  # before any timing
        print(f"throughput: {args.size_mib} MiB, {len(parts)} parts of {args.part_mib} MiB, {args.concurrency} at a time "
              f"(parts sent with: {', '.join(kinds)}); "
              f"download as ranged GETs of {args.part_mib} MiB; median of {args.repeat} interleaved rounds", flush=True)

        def round_trip(side: Side):
            def once() -> tuple[dict[str, CPUMeter], CPUMeter]:
                ups = {}
                for kind in kinds:
                    with CPUMeter(side.gw.proc.pid, backend.proc.pid) as up:
                        side.multipart_upload("big.bin", parts, args.concurrency, checksums[kind])
                    up.complete = side.last_complete
                    ups[kind] = up
                with CPUMeter(side.gw.proc.pid, backend.proc.pid) as down:
                    side.ranged_download("big.bin", size, args.part_mib * MIB, args.concurrency)
                return ups, down
            return once

        rounds = common.interleaved(args.repeat, {side.label: round_trip(side) for side in (plain, enc)})
        # The encrypted download is the plaintext (checked once, outside the timing).
        check = workdir / "check.bin"
        enc.curl("GET", f"/{BUCKET}/big.bin", out=str(check))
        if s3gw.sha256_file(check) != s3gw.sha256_file(src):
            raise s3gw.HarnessError("the encrypted multipart object does not read back as the source")
        check.unlink()
        for kind in kinds:
            report_upload(UPLOAD_TITLES[kind], args.size_mib, {label: [r[0][kind] for r in runs] for label, runs in rounds.items()})
        print("  download, parallel ranged GETs:")
        report_speeds("download", args.size_mib, {label: [r[1] for r in runs] for label, runs in rounds.items()})
    finally:
        for side in (plain, enc):
            bench.stop(side.gw)
        shutil.rmtree(workdir / "parts", ignore_errors=True)
        src.unlink(missing_ok=True)


def bench_memory(args, bench: common.Bench, backend: Backend) -> None:
    workdir = bench.workdir
    part = workdir / "rss-part.bin"
    s3gw.write_random(part, args.rss_part_mib * MIB)
    print(f"memory: 8 parallel UploadParts of {args.rss_part_mib} MiB into one upload, fresh gateway each", flush=True)
    try:
        for label, passthrough_mode in (("encrypted", False), ("pass-through", True)):
            side = Side(label, start(bench, backend, f"gw-rss-{label}", passthrough_mode))
            try:
                side.request("PUT", f"/{BUCKET}")
                side.request("HEAD", f"/{BUCKET}/none")  # warm up the connection pool and code paths
                pid = side.gw.proc.pid
                before = memory_kib(pid)
                peak_rss = [before["VmRSS"]]
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        peak_rss[0] = max(peak_rss[0], memory_kib(pid)["VmRSS"])
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                t0 = time.monotonic()
                side.multipart_upload("sink/parallel", [part] * 8, concurrency=8)
                elapsed = time.monotonic() - t0
                done.set()
                sampler.join()
                after = memory_kib(pid)
                print(f"  {label:<13} RSS before {before['VmRSS'] / 1024:6.1f} MiB, peak (VmHWM) {after['VmHWM'] / 1024:6.1f} MiB, "
                      f"peak sampled {peak_rss[0] / 1024:6.1f} MiB; {8 * args.rss_part_mib / elapsed:.0f} MiB/s"
                      + ("   (goal < 128 MiB)" if label == "encrypted" else ""), flush=True)
            finally:
                bench.stop(side.gw)
    finally:
        part.unlink(missing_ok=True)


def bench_requests(args, bench: common.Bench, backend: Backend) -> None:
    workdir = bench.workdir
    print("requests per ranged GET into a 100-part object (backend requests by kind; get-header = 36-byte part-header read)",
          flush=True)
    sizes = {"aligned": MIB, "unaligned": MIB + 1}
    setup = Side("encrypted", start(bench, backend, "gw-req-setup", False))
    try:
        setup.request("PUT", f"/{BUCKET}")
        for name, part_size in sizes.items():
            src = workdir / f"{name}.bin"
            s3gw.write_random(src, 100 * part_size)
            setup.multipart_upload(f"hundred/{name}", split(src, part_size, workdir / f"parts-{name}"), concurrency=4)
            shutil.rmtree(workdir / f"parts-{name}", ignore_errors=True)
            src.unlink()
    finally:
        bench.stop(setup.gw)
    rng = random.Random(100)

    def show(what: str, counts: dict[str, int], n: int = 1) -> None:
        total = sum(counts.values())
        detail = ", ".join(f"{k} {v / n:g}" for k, v in sorted(counts.items()))
        print(f"  {what:<58} {total / n:5.2f} requests   ({detail})", flush=True)

    for name, part_size in sizes.items():
        size = 100 * part_size
        key = f"/{BUCKET}/hundred/{name}"

        def ranged(side: Side) -> None:
            first = rng.randrange(0, size - 3 * MIB)
            side.curl("GET", key, extra={"Range": f"bytes={first}-{first + 2 * MIB}"})

        print(f" {name} parts ({part_size} bytes):")
        side = Side("encrypted", start(bench, backend, f"gw-req-{name}", False))
        try:
            backend.stats()
            side.request("HEAD", key)
            show("HEAD, fresh gateway", backend.stats())
            ranged(side)
            show("ranged GET (2 MiB across parts) after it", backend.stats())
            for _ in range(20):
                ranged(side)
            show("ranged GET, warm (mean of 20)", backend.stats(), 20)
        finally:
            bench.stop(side.gw)
        side = Side("encrypted", start(bench, backend, f"gw-req-{name}-cold", False))
        try:
            backend.stats()
            ranged(side)
            show("ranged GET, fresh gateway (cold)", backend.stats())
        finally:
            bench.stop(side.gw)
        side = Side("encrypted", start(bench, backend, f"gw-req-{name}-list", False))
        try:
            backend.stats()
            status, _, body = side.request("GET", f"/{BUCKET}?list-type=2&prefix=hundred/{name}")
            listed = re.search(rb"<Size>(\d+)</Size>", body)
            if status != 200 or not listed or int(listed.group(1)) != size:
                raise s3gw.HarnessError(f"listing of hundred/{name}: HTTP {status}, size {listed and listed.group(1)} != {size}")
            show("listing of it, fresh gateway (exact size)", backend.stats())
            ranged(side)
            show("ranged GET after the listing", backend.stats())
        finally:
            bench.stop(side.gw)


def run_bench(args, bench: common.Bench) -> None:
    only = set(args.only.split(","))
    backend = bench.track(Backend(bench.workdir))
    print(f"bench: backend {backend.endpoint}; data in {bench.workdir}; load: {os.getloadavg()}", flush=True)
    if "throughput" in only:
        bench_throughput(args, bench, backend)
    if "memory" in only:
        bench_memory(args, bench, backend)
    if "requests" in only:
        bench_requests(args, bench, backend)
    print(f"load after: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    parser.add_argument("--rss-part-mib", type=int, default=512)
    parser.add_argument("--only", default="throughput,memory,requests")
    parser.add_argument("--part-checksum", choices=["crc32", "none"], default=None,
                        help="throughput: upload parts with x-amz-checksum-crc32 (the row; the SDKs' default) or without a "
                             "checksum, only; by default both are run, crc32 first")
    args = parser.parse_args()
    workdir = common.pick_workdir(max(2 * args.size_mib, args.rss_part_mib) * MIB)
    return common.run(lambda bench: run_bench(args, bench), workdir)


if __name__ == "__main__":
    sys.exit(main())
