#!/usr/bin/env python3
"""4 KiB PUT and GET rates through the gateway with each key provider, against `raw` (a local key).

    make bench-keys                    # or: python3 bench/keys.py [--rounds 5] [--seconds 3] [--concurrency 16]

Starts one backend (Ceph RGW by default, `--backend moto` for a quick run), the key managers of the test suite
(PyKMIP over mutual TLS, moto's KMS, the Vault Transit double; Tests/Support/key_managers.py) and one gateway per
variant: `raw`, and each key manager with the default unwrapped-key cache and intermediate keys ("cache") and
with both switched off (`KEY_CACHE_TTL=0`, `KEY_INTERMEDIATE_LIFETIME=0`: a key-manager call for every PUT and
every GET, "no cache"). Each round measures every variant once, in an order that rotates from round to round,
PUT then GET, for `--seconds` each at `--concurrency` keep-alive connections (SigV4-signed, from `--processes`
load-generator processes). Ratios are taken within a round against that round's `raw`; the table shows the
median over the rounds and the spread (min–max). The machine is shared and noisy: compare ratios, not absolute
rates, and note the load average printed at the end.

Goal (issue 10): with the cache, GET ≥ 0.9 of raw.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import common
import s3gw  # on sys.path through common

sys.path.insert(0, str(common.BENCH.parent / "Tests" / "Support"))

import key_managers  # noqa: E402

BODY = os.urandom(4096)


def worker(args) -> int:
    """One load-generator process: `connections` threads, each a keep-alive connection, until `deadline`."""
    import threading
    endpoint, access, secret, bucket, op, keys, connections, start, deadline, seed = args
    parts = urllib.parse.urlsplit(endpoint)
    counts = [0] * connections
    failures = [0] * connections

    def loop(slot: int):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        i = seed * 1000 + slot
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < deadline:
            key = keys[i % len(keys)] if op == "GET" else f"put/{seed}-{slot}-{i}"
            url = f"{endpoint}/{bucket}/{key}"
            headers = s3gw.sigv4_headers(op, url, access, secret)
            try:
                if op == "PUT":
                    headers["content-length"] = str(len(BODY))
                    conn.request("PUT", f"/{bucket}/{key}", body=BODY, headers=headers)
                else:
                    conn.request("GET", f"/{bucket}/{key}", headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.status == 200 and (op == "PUT" or len(data) == len(BODY)):
                    counts[slot] += 1
                else:
                    failures[slot] += 1
            except (OSError, http.client.HTTPException):
                failures[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            i += connections
        conn.close()

    threads = [threading.Thread(target=loop, args=(s,)) for s in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(failures):
        print(f"  ! {sum(failures)} failed {op} requests", file=sys.stderr)
    return sum(counts)


def measure(pool, gw: s3gw.Gateway, bucket: str, op: str, keys: list[str], seconds: float, processes: int,
            concurrency: int) -> float:
    start = time.time() + 0.3
    per_process = max(1, concurrency // processes)
    jobs = [(gw.endpoint, gw.access_key, gw.secret_key, bucket, op, keys, per_process, start, start + seconds, p)
            for p in range(processes)]
    done = sum(pool.map(worker, jobs))
    return done / seconds


def run_bench(args, bench: common.Bench) -> None:
    work = bench.workdir
    backend = bench.track(s3gw.start_backend(args.backend, work / "backend"))
    raw_key = work / "raw.key"
    raw_key.write_text(secrets.token_hex(32))
    envs = {"raw": {"ENCRYPTION_KEY_PROVIDER": "raw", "ENCRYPTION_KEY_FILE": str(raw_key)}}
    providers = [p for p in args.providers.split(",") if p]
    if "kmip" in providers:
        kmip = bench.track(key_managers.PyKMIPServer(work / "kmip"))
        envs["kmip"] = {"ENCRYPTION_KEY_PROVIDER": "kmip", **kmip.gateway_env(kmip.create_key())}
    if "aws-kms" in providers:
        kms = bench.track(key_managers.MotoKMS(work / "kms"))
        envs["aws-kms"] = {"ENCRYPTION_KEY_PROVIDER": "aws-kms", **kms.gateway_env()}
    if "vault-transit" in providers:
        vault = bench.track(key_managers.VaultDouble(work / "vault"))
        vault.create_key("s3eg")
        envs["vault-transit"] = {"ENCRYPTION_KEY_PROVIDER": "vault-transit", **vault.gateway_env("s3eg", vault.token())}

    variants: dict[str, dict[str, str]] = {"raw": envs["raw"]}
    for provider in providers:
        variants[f"{provider} cache"] = envs[provider]
        variants[f"{provider} no cache"] = {**envs[provider], "KEY_CACHE_TTL": "0", "KEY_INTERMEDIATE_LIFETIME": "0"}

    gateways: dict[str, tuple[s3gw.Gateway, str, list[str]]] = {}
    for name, env in variants.items():
        gw = bench.gateway(backend.endpoint, "gateway", passthrough=False, workdir=work / name.replace(" ", "-"),
                           access_key=backend.access_key, secret_key=backend.secret_key, require_ready=True,
                           env={"ENCRYPTION_PASSWORD": "", **env})
        client = gw.client()
        bucket = "bench-" + name.replace(" ", "-")
        client.create_bucket(Bucket=bucket)
        keys = [f"get/{i}" for i in range(args.objects)]
        for key in keys:
            client.put_object(Bucket=bucket, Key=key, Body=BODY)
        gateways[name] = (gw, bucket, keys)

    names = list(variants)
    rates: dict[tuple[str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    with multiprocessing.Pool(args.processes) as pool:
        for round_no in range(args.rounds):
            order = names[round_no % len(names):] + names[:round_no % len(names)]
            this_round: dict[tuple[str, str], float] = {}
            for name in order:
                gw, bucket, keys = gateways[name]
                for op in ("PUT", "GET"):
                    rate = measure(pool, gw, bucket, op, keys, args.seconds, args.processes, args.concurrency)
                    this_round[(name, op)] = rate
                    rates.setdefault((name, op), []).append(rate)
            for (name, op), rate in this_round.items():
                ratios.setdefault((name, op), []).append(rate / this_round[("raw", op)])
            print(f"round {round_no + 1}/{args.rounds}: " + ", ".join(
                f"{n} {op} {this_round[(n, op)]:.0f}/s" for n in names for op in ("PUT", "GET")), file=sys.stderr)

    print(f"\n4 KiB requests/s through the gateway, {args.rounds} interleaved rounds of {args.seconds:g} s per phase, "
          f"concurrency {args.concurrency}, backend {args.backend}")
    print(f"{'variant':<24} {'PUT req/s':>10} {'PUT ÷ raw (min–max)':>24} {'GET req/s':>10} {'GET ÷ raw (min–max)':>24}")
    for name in names:
        cells = []
        for op in ("PUT", "GET"):
            r = ratios[(name, op)]
            cells.append(f"{statistics.median(rates[(name, op)]):>10.0f} "
                         f"{statistics.median(r):>10.2f} ({min(r):.2f}–{max(r):.2f})".ljust(35))
        print(f"{name:<24} {cells[0]} {cells[1]}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    gets = [statistics.median(ratios[(f'{p} cache', 'GET')]) for p in providers]
    if gets:
        verdict = "met" if min(gets) >= 0.9 else "NOT met"
        print(f"goal GET with cache ≥ 0.9 of raw: {verdict} (lowest median {min(gets):.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description="4 KiB PUT/GET rates per key provider vs raw")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--objects", type=int, default=200, help="objects read in the GET phase")
    parser.add_argument("--backend", choices=["ceph", "moto"], default="ceph")
    parser.add_argument("--providers", default="kmip,aws-kms,vault-transit")
    args = parser.parse_args()
    if args.rounds < 5:
        print("note: fewer than 5 rounds; the medians are less trustworthy", file=sys.stderr)

    return common.run(lambda bench: run_bench(args, bench), Path(tempfile.mkdtemp(prefix="bench-keys-")))


if __name__ == "__main__":
    sys.exit(main())
