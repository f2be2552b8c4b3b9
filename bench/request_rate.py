#!/usr/bin/env python3
"""Small-request throughput and latency (issue 12): 4 KiB GETs over keep-alive with `wrk`, against nginx direct,
nginx `proxy_pass` with upstream keep-alive, the gateway in pass-through mode and the gateway encrypting, all in
front of the same nginx, in one run. Rounds interleave the four targets (nginx, proxy, pass-through, encrypting,
nginx, ...) so load from other processes on a shared machine hits all alike; prints per-target medians and the
median ratio of each round with its spread (min-max), plus the load average.

  python3 bench/request_rate.py [--connections 64] [--seconds 5] [--rounds 5] [--size 4096] [--idle 0]

`--idle N` adds a third gateway (pass-through, like the second) that holds N idle kept-alive authenticated
connections while it is measured in the same interleaved rounds, for the "10 000 idle connections" row: prints its
threads and RSS with them open and the ratio of its req/s to the gateway without them.

The gateway checks signatures, nginx does not: each request carries SigV4 headers made once per round (valid
for the clock-skew window, so wrk can replay them).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
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

# Upstream keep-alive for nginx's own proxy: without it every proxied request opens a connection.
NGINX_CONF = (encrypted.NGINX_CONF
              .replace("    server {{\n        listen 127.0.0.1:{proxy_port};",
                       "    upstream backend {{\n        server 127.0.0.1:{port};\n        keepalive 128;\n    }}\n"
                       "    server {{\n        listen 127.0.0.1:{proxy_port};", 1)
              .replace("proxy_pass http://127.0.0.1:{port};", "proxy_pass http://backend;", 1)
              .replace("worker_connections 256;", "worker_connections 4096;", 1))
assert "keepalive 128" in NGINX_CONF and "proxy_pass http://backend;" in NGINX_CONF, "nginx.conf template changed"

LUA = """
wrk.method = "{method}"
wrk.headers = {{ {headers} }}
"""

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk(url: str, headers: dict[str, str], connections: int, seconds: int, threads: int, workdir: Path) -> dict:
    script = workdir / "wrk.lua"
    script.write_text(LUA.format(method="GET", headers=", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())))
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise s3gw.HarnessError(f"wrk failed: {out.stderr}")
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        lat[pct] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        raise s3gw.HarnessError(f"{url}: {errors.group(1)} non-2xx answers:\n{text}")
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"]}


def proc_stats(pid: int) -> tuple[int, int]:
    """(threads, RSS KiB) of a process."""
    threads = rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return threads, rss


def hold_idle(gw: s3gw.Gateway, n: int, path: str) -> list[socket.socket]:
    """`n` kept-alive connections, each authenticated by one signed HEAD, left open."""
    host = gw.endpoint.split("//", 1)[1]
    socks = []
    for i in range(0, n, 500):
        batch = [socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), timeout=60)
                 for _ in range(min(500, n - i))]
        headers = s3gw.sigv4_headers("HEAD", gw.endpoint + path, gw.access_key, gw.secret_key)
        req = (f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
               + "\r\n").encode()
        for s in batch:
            s.sendall(req)
        for s in batch:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    raise s3gw.HarnessError("an idle connection was closed while being set up")
                data += chunk
        socks.extend(batch)
    return socks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "64")))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "5")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument("--size", type=int, default=int(os.environ.get("BENCH_SIZE", "4096")))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--idle", type=int, default=int(os.environ.get("BENCH_IDLE", "0")))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk not found (scripts/deps.sh bench installs it)", file=sys.stderr)
        return 1
    if args.idle:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    workdir = passthrough.pick_workdir(args.size)
    ndir = workdir / "nginx"
    ndir.mkdir(parents=True, exist_ok=True)
    (ndir / "meta.conf").write_text("")
    passthrough.NGINX_CONF = NGINX_CONF
    nginx, gateways, idle = None, [], []
    try:
        nginx, backend, proxy = passthrough.start_nginx(workdir)
        common = {"LOG_LEVEL": "warn", "MAX_CONNECTIONS": str(max(1024, 2 * args.idle + 256)),
                  "MAX_UNAUTHENTICATED_CONNECTIONS": str(max(256, 2 * args.idle + 256))}
        plain = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-plain",
                                   require_ready=False, name="gateway-plain",
                                   extra_env={**common, "GATEWAY_PASSTHROUGH": "true"})
        gateways.append(plain)
        enc = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-enc",
                                 require_ready=False, name="gateway-enc",
                                 extra_env={**common, "GATEWAY_PASSTHROUGH": "false"})
        gateways.append(enc)
        body = os.urandom(args.size)
        for gw, key in ((plain, "/bench/plain"), (enc, "/bench/enc")):
            url = gw.endpoint + key
            headers = s3gw.sigv4_headers("PUT", url, gw.access_key, gw.secret_key,
                                         headers={"content-length": str(len(body))})
            status = s3gw.http_request("PUT", url, headers=headers, body=body)[0]
            if status not in (200, 201, 204):
                raise s3gw.HarnessError(f"PUT {url}: HTTP {status}")
        encrypted.serve_metadata(ndir, nginx, backend, "/bench/enc")
        busy = None
        if args.idle:
            busy = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-idle",
                                      require_ready=False, name="gateway-idle",
                                      extra_env={**common, "GATEWAY_PASSTHROUGH": "true"})
            gateways.append(busy)
            threads, rss = proc_stats(busy.proc.pid)
            print(f"  gateway-idle before: {threads} threads, RSS {rss / 1024:.0f} MiB", flush=True)
            started = time.monotonic()
            idle += hold_idle(busy, args.idle, "/bench/plain")
            threads, rss = proc_stats(busy.proc.pid)
            print(f"  gateway-idle: {args.idle} idle connections opened in {time.monotonic() - started:.1f}s: "
                  f"{threads} threads, RSS {rss / 1024:.0f} MiB", flush=True)
        print(f"bench: {args.size}-byte GETs, keep-alive, c={args.connections}, {args.seconds}s x {args.rounds} "
              f"interleaved rounds, wrk -t{args.threads}; idle connections held: {args.idle}; "
              f"load average {os.getloadavg()}", flush=True)
        names = ["nginx", "nginx-proxy", "pass-through", "encrypting"] + (["pass-through+idle"] if busy else [])
        results: dict[str, list[dict]] = {n: [] for n in names}
        for _ in range(args.rounds):
            targets = {
                "nginx": (backend + "/bench/plain", {}),
                "nginx-proxy": (proxy + "/bench/plain", {}),
                "pass-through": (plain.endpoint + "/bench/plain",
                                 s3gw.sigv4_headers("GET", plain.endpoint + "/bench/plain", plain.access_key,
                                                    plain.secret_key)),
                "encrypting": (enc.endpoint + "/bench/enc",
                               s3gw.sigv4_headers("GET", enc.endpoint + "/bench/enc", enc.access_key, enc.secret_key)),
            }
            if busy:
                targets["pass-through+idle"] = (busy.endpoint + "/bench/plain",
                                                s3gw.sigv4_headers("GET", busy.endpoint + "/bench/plain",
                                                                   busy.access_key, busy.secret_key))
            for name in names:
                url, headers = targets[name]
                results[name].append(wrk(url, headers, args.connections, args.seconds, args.threads, workdir))
        for name in names:
            r = results[name]
            print(f"  {name:<17} req/s median {statistics.median(x['rps'] for x in r):9.0f}   p50 "
                  f"{statistics.median(x['p50'] for x in r) * 1e3:7.2f} ms   p99 "
                  f"{statistics.median(x['p99'] for x in r) * 1e3:7.2f} ms   "
                  f"(req/s runs: {', '.join('%.0f' % x['rps'] for x in r)})", flush=True)

        def ratio(label: str, a: str, b: str, key: str = "rps", goal: str = "") -> None:
            values = [x[key] / y[key] for x, y in zip(results[a], results[b])]
            print(f"  ratio {label:<44} median {statistics.median(values):5.2f}  spread "
                  f"{min(values):.2f}-{max(values):.2f}  {goal}", flush=True)

        ratio("req/s pass-through / nginx-proxy", "pass-through", "nginx-proxy", goal="(goal >= 0.5)")
        ratio("req/s encrypting / pass-through", "encrypting", "pass-through", goal="(goal >= 0.8)")
        ratio("req/s pass-through / nginx direct", "pass-through", "nginx")
        ratio("p99 pass-through / nginx-proxy", "pass-through", "nginx-proxy", key="p99", goal="(goal <= 2)")
        if busy:
            ratio(f"req/s with {args.idle} idle open / none open", "pass-through+idle", "pass-through",
                  goal="(goal >= 0.8)")
        for gw in gateways:
            threads, rss = proc_stats(gw.proc.pid)
            print(f"  {gw.log_path.stem}: {threads} threads, RSS {rss / 1024:.0f} MiB after the run")
        print(f"  load average at the end: {os.getloadavg()}")
        return 0
    except s3gw.HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        for gw in gateways:
            print(gw.log_tail(), file=sys.stderr)
        return 1
    finally:
        for s in idle:
            s.close()
        for gw in gateways:
            try:
                gw.terminate()
            except s3gw.HarnessError as exc:
                print(f"bench: {exc}", file=sys.stderr)
        passthrough.stop_nginx(nginx)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
