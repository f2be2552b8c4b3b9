#!/usr/bin/env python3
"""Small-request throughput and latency (issue 12): 4 KiB GETs over keep-alive with `wrk`, against nginx direct,
nginx `proxy_pass` with upstream keep-alive, the gateway in pass-through mode and the gateway encrypting, all in
front of the same nginx, in one run; plus nginx-own-proxy, a reference side: the same proxy_pass run as an nginx of
its own in front of that nginx (the baseline's proxy runs inside the backend's processes), so that the proxy's own
CPU per request shows apart from the backend's. Rounds interleave the targets (the next round starts one later) so
load from other processes on a shared machine hits all alike; prints per-target medians and the median ratio of
each round with its spread (min-max), plus the load average.

It also prints each side's CPU time per request, per process (gateway, nginx, wrk), from /proc: where a side's time
goes. wrk, nginx and the gateway share the machine's cores, so while a side keeps them busy its req/s is the cores'
time divided by its total CPU per request, and the ratio of two sides' CPU per request is the req/s ratio; the two
differ by how much of the cores other processes took meanwhile.

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
import threading
import time
from pathlib import Path

import common
import s3gw  # on sys.path through common

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
    return parse_wrk(out.stdout, url)


def parse_wrk(text: str, url: str) -> dict:
    """What `wrk --latency` printed: req/s, p50 and p99 (seconds) and how many requests it completed; an error
    when some answers were not 2xx/3xx."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        lat[pct] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        raise s3gw.HarnessError(f"{url}: {errors.group(1)} non-2xx answers:\n{text}")
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "requests": requests}


def proc_stats(pid: int) -> tuple[int, int]:
    """(threads, RSS KiB) of a process."""
    threads = rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return threads, rss


def epoll_sets(pid: int) -> list[int]:
    """Descriptors registered in each epoll set of a process, largest first. The gateway's event loops
    are its epoll sets: each holds its connections plus its wake-up eventfd (loop 0 also the listener),
    so this shows how the connections are split over the loops."""
    sets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:[eventpoll]":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        sets.append(sum(1 for line in info.splitlines() if line.startswith("tfd:")))
    return sorted(sets, reverse=True)


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


class IdleConnections(list):
    """The idle connections held open, closed when the run ends."""

    name = "idle connections"

    def stop(self) -> None:
        for s in self:
            s.close()


def run_bench(args, bench: common.Bench) -> None:
    # Upstream keep-alive for nginx's own proxy: without it every proxied request opens a connection.
    nginx = bench.nginx(metadata=True, worker_connections=4096, upstream_keepalive=128)
    backend, proxy = nginx.endpoint, nginx.proxy_endpoint
    # A reference side: nginx's proxy_pass as a process of its own in front of the same nginx, like the gateway
    # (the baseline's proxy runs in the backend's own processes), so the proxy's own CPU per request shows apart.
    own = bench.nginx("nginx-own-proxy", worker_connections=4096, upstream_keepalive=128,
                      proxy_to=backend.split("//", 1)[1])
    limits = {"MAX_CONNECTIONS": str(max(1024, 2 * args.idle + 256)),
              "MAX_UNAUTHENTICATED_CONNECTIONS": str(max(256, 2 * args.idle + 256))}
    plain = bench.gateway(backend, "gateway-plain", passthrough=True, env=limits)
    enc = bench.gateway(backend, "gateway-enc", passthrough=False, env=limits)
    body = os.urandom(args.size)
    enc_puts = len(nginx.logged_puts("/bench/enc")) + 1
    for gw, key in ((plain, "/bench/plain"), (enc, "/bench/enc")):
        url = gw.endpoint + key
        headers = s3gw.sigv4_headers("PUT", url, gw.access_key, gw.secret_key,
                                     headers={"content-length": str(len(body))})
        status = s3gw.http_request("PUT", url, headers=headers, body=body)[0]
        if status not in (200, 201, 204):
            raise s3gw.HarnessError(f"PUT {url}: HTTP {status}")
    nginx.serve_metadata("/bench/enc", puts=enc_puts)
    busy = None
    if args.idle:
        busy = bench.gateway(backend, "gateway-idle", passthrough=True, env=limits)
        threads, rss = proc_stats(busy.proc.pid)
        print(f"  gateway-idle before: {threads} threads, RSS {rss / 1024:.0f} MiB", flush=True)
        started = time.monotonic()
        idle = bench.track(IdleConnections())  # closed before the gateways stop
        idle += hold_idle(busy, args.idle, "/bench/plain")
        threads, rss = proc_stats(busy.proc.pid)
        print(f"  gateway-idle: {args.idle} idle connections opened in {time.monotonic() - started:.1f}s: "
              f"{threads} threads, RSS {rss / 1024:.0f} MiB", flush=True)
    print(f"bench: {args.size}-byte GETs, keep-alive, c={args.connections}, {args.seconds}s x {args.rounds} "
          f"interleaved rounds, wrk -t{args.threads}; idle connections held: {args.idle}; "
          f"load average {os.getloadavg()}", flush=True)
    gateways = {"pass-through": (plain, "/bench/plain"), "encrypting": (enc, "/bench/enc")}
    if busy:
        gateways["pass-through+idle"] = (busy, "/bench/plain")

    def target(url: str, gw: s3gw.Gateway | None = None, own_proxy: bool = False):
        # CPU time of every process of the side (wrk is the client: its time counts once it has ended).
        meter = common.CostMeter({**({"gateway": lambda: [gw.proc.pid]} if gw else {}),
                                  **({"nginx-proxy": own.pids} if own_proxy else {}), "nginx": nginx.pids},
                                 client="wrk")

        def run() -> dict:
            # Signed once per round: wrk replays the same headers for the round (valid within the clock skew).
            headers = s3gw.sigv4_headers("GET", url, gw.access_key, gw.secret_key) if gw else {}
            sample: list[list[int]] = []
            if gw:  # the split over the event loops, halfway through the round
                timer = threading.Timer(args.seconds / 2, lambda: sample.append(epoll_sets(gw.proc.pid)))
                timer.start()
            result, cost = meter.measure(
                lambda: wrk(url, headers, args.connections, args.seconds, args.threads, bench.workdir))
            result["cost"] = cost
            if gw:
                timer.join()
                result["loops"] = sample[0] if sample else []
            return result
        return run

    results = common.interleaved(args.rounds, {
        "nginx": target(backend + "/bench/plain"),
        "nginx-proxy": target(proxy + "/bench/plain"),
        "nginx-own-proxy": target(own.proxy_endpoint + "/bench/plain", own_proxy=True),
        **{name: target(gw.endpoint + key, gw) for name, (gw, key) in gateways.items()},
    })
    for name, r in results.items():
        print(f"  {name:<17} req/s median {statistics.median(x['rps'] for x in r):9.0f}   p50 "
              f"{statistics.median(x['p50'] for x in r) * 1e3:7.2f} ms   p99 "
              f"{statistics.median(x['p99'] for x in r) * 1e3:7.2f} ms   "
              f"(req/s runs: {common.runs([x['rps'] for x in r])})", flush=True)
        if "loops" in r[-1]:
            print(f"  {'':<17} event loops' epoll sets, last round (connections + eventfd, loop 0 + listener): "
                  f"{r[-1]['loops']}", flush=True)

    def ratio(label: str, a: str, b: str, key: str = "rps", goal: str = "") -> None:
        values = common.ratios([x[key] for x in results[a]], [y[key] for y in results[b]])
        print(f"  ratio {label:<44} median {statistics.median(values):5.2f}  spread "
              f"{common.spread(values)}  {goal}", flush=True)

    print("  CPU per request (µs, medians; wrk, nginx and the gateway share the cores):", flush=True)
    for name, r in results.items():
        roles = list(r[0]["cost"].cpu)
        per_role = {role: statistics.median(x["cost"].cpu[role] / x["requests"] * 1e6 for x in r) for role in roles}
        totals = [x["cost"].total_cpu / x["requests"] * 1e6 for x in r]
        print(f"    {name:<17} " + ", ".join(f"{role} {v:6.1f}" for role, v in per_role.items())
              + f"; total {statistics.median(totals):6.1f} (runs: {common.runs(totals, '{:.1f}')})", flush=True)

    def cpu_ratio(label: str, a: str, b: str) -> None:
        """b's CPU per request / a's: the req/s ratio a / b of a machine that each side keeps busy in turn."""
        values = common.ratios([y["cost"].total_cpu / y["requests"] for y in results[b]],
                               [x["cost"].total_cpu / x["requests"] for x in results[a]])
        print(f"  ratio {label:<44} median {statistics.median(values):5.2f}  spread {common.spread(values)}",
              flush=True)

    ratio("req/s pass-through / nginx-proxy", "pass-through", "nginx-proxy", goal="(goal >= 0.5)")
    cpu_ratio("CPU/request nginx-proxy side / pass-through side", "pass-through", "nginx-proxy")
    cpu_ratio("CPU/request pass-through side / encrypting side", "encrypting", "pass-through")
    ratio("req/s encrypting / pass-through", "encrypting", "pass-through", goal="(goal >= 0.8)")
    ratio("req/s pass-through / nginx direct", "pass-through", "nginx")
    ratio("req/s pass-through / nginx-own-proxy", "pass-through", "nginx-own-proxy")
    ratio("p99 pass-through / nginx-proxy", "pass-through", "nginx-proxy", key="p99", goal="(goal <= 2)")
    if busy:
        ratio(f"req/s with {args.idle} idle open / none open", "pass-through+idle", "pass-through",
              goal="(goal >= 0.8)")
    for gw in bench.gateways():
        threads, rss = proc_stats(gw.proc.pid)
        print(f"  {gw.log_path.stem}: {threads} threads, RSS {rss / 1024:.0f} MiB after the run")
    print(f"  load average at the end: {os.getloadavg()}")


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
    return common.run(lambda bench: run_bench(args, bench), common.pick_workdir(args.size))


if __name__ == "__main__":
    sys.exit(main())
