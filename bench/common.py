"""What the benchmarks in bench/ share: a run that stops everything it started, the fast nginx backend, gateways
in front of it, curl transfers, and interleaved rounds with their medians, spreads and per-round ratios.

    import common          # bench/ is on sys.path when a bench runs as `python3 bench/x.py`
    import s3gw            # scripts/ is put on sys.path by common

    def measure(args, bench: common.Bench) -> None:
        nginx = bench.nginx(metadata=True)
        gw = bench.gateway(nginx.endpoint, "gateway-enc", passthrough=False)
        ...

    sys.exit(common.run(lambda bench: measure(args, bench), common.pick_workdir(size)))

The machines are shared and noisy, so every bench measures baseline and candidate in the same rounds
(`interleaved`) and reports medians with their spread, and ratios taken within a round (`ratios`).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "scripts"))

import s3gw  # noqa: E402

#: Backend credentials of the benches' own backends (nginx and bench/multipart_backend.py check no signatures).
BACKEND_ACCESS_KEY = "BENCHKEY"
BACKEND_SECRET_KEY = "bench-backend-secret"

T = TypeVar("T")


# ---- one run: everything started is stopped, the work directory removed

class Bench:
    """The processes one bench run started (gateways, nginx, backends, key managers) and its work directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list = []

    def track(self, thing: T) -> T:
        """Stops `thing` at the end of the run (`terminate()` for a gateway, else `stop()`); returns it."""
        self.started.append(thing)
        return thing

    def stop(self, thing) -> None:
        """Stops one tracked process now (a gateway started per round)."""
        self.started.remove(thing)
        _stop(thing)

    def gateways(self) -> list[s3gw.Gateway]:
        return [t for t in self.started if isinstance(t, s3gw.Gateway)]

    def nginx(self, dirname: str = "nginx", **options) -> "Nginx":
        """nginx on `workdir/dirname` (options: see `nginx_conf`)."""
        return self.track(Nginx(self.workdir, dirname, **options))

    def gateway(self, backend: str, name: str, *, passthrough: bool, env: dict[str, str] | None = None,
                workdir: Path | None = None, access_key: str = BACKEND_ACCESS_KEY,
                secret_key: str = BACKEND_SECRET_KEY, require_ready: bool = False) -> s3gw.Gateway:
        """A gateway in front of `backend`, encrypting or pass-through, logging at warn (`env` adds or overrides
        variables); its log is `workdir/name.log` (default workdir: the run's `workdir/name`)."""
        extra = {"GATEWAY_PASSTHROUGH": "true" if passthrough else "false", "LOG_LEVEL": "warn", **(env or {})}
        return self.track(s3gw.start_gateway(backend, access_key, secret_key, workdir or self.workdir / name,
                                             require_ready=require_ready, extra_env=extra, name=name))

    def close(self) -> None:
        for thing in reversed(self.started):
            try:
                _stop(thing)
            except Exception as exc:  # noqa: BLE001 - stop everything that was started
                print(f"bench: stopping {getattr(thing, 'name', type(thing).__name__)}: {exc}", file=sys.stderr)
        self.started.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _stop(thing) -> None:
    if isinstance(thing, s3gw.Gateway):
        thing.terminate()
    else:
        thing.stop()


def run(body: Callable[[Bench], int | None], workdir: Path) -> int:
    """Runs `body` with a fresh `Bench` on `workdir`; the exit status: 0, or 1 after a `HarnessError` (printed
    with the log tails of the gateways started). Everything started is stopped and `workdir` removed, also when
    the bench is interrupted (Ctrl-C) or terminated (SIGTERM)."""
    main = os.getpid()

    def terminated(*_) -> None:
        if os.getpid() != main:  # a forked worker (multiprocessing) dies as it would without this handler
            os._exit(128 + signal.SIGTERM)
        sys.exit(128 + signal.SIGTERM)  # unwinds into the `finally` below

    signal.signal(signal.SIGTERM, terminated)
    bench = Bench(workdir)
    try:
        return body(bench) or 0
    except s3gw.HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        for gw in bench.gateways():
            print(gw.log_tail(), file=sys.stderr)
        return 1
    finally:
        bench.close()


def pick_workdir(size: int, prefix: str = "s3gw-bench-") -> Path:
    """A new temp dir, on /dev/shm when it has room for 4x `size` (so the disk is not what is measured)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * size + (512 << 20):
        return Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
    return Path(tempfile.mkdtemp(prefix=prefix))


# ---- nginx: the fast backend (WebDAV PUT, sendfile) and nginx's own proxy_pass in front of it

#: The gateway's metadata headers (x-amz-meta-s3eg-*) that `Nginx.serve_metadata` returns for an object.
META_FIELDS = ["version", "cipher", "chunk-size", "provider", "key-id", "ik", "wrapped-key", "layout", "salt", "etag",
               "checksum", "mac"]

NGINX_CONF = """\
{user}
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
{access_log}    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/data;
{include}        location / {{
            autoindex on;
            dav_methods PUT DELETE MKCOL;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
    # A plain pass-through proxy in front of the same files: the baseline a proxy
    # that copies every byte through user space can be held to.
{upstream}    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass {proxy_target};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering on;
            proxy_buffers 64 64k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""


def nginx_conf(ndir: Path, port: int, proxy_port: int, *, metadata: bool = False, worker_connections: int = 256,
               upstream_keepalive: int = 0, proxy_to: str | None = None) -> str:
    """nginx.conf of the bench backend.

    `metadata`: nginx stores bodies but not request headers, so on its own it would serve an encrypted object
    without its `x-amz-meta-s3eg-*` metadata (and the gateway would pass the ciphertext through as a plain object).
    With `metadata` it logs those headers of every request (`meta.log`) and includes `meta.conf`, where
    `Nginx.serve_metadata` puts `add_header` lines that return an object's metadata.
    `upstream_keepalive`: connections nginx's proxy keeps to the backend (0: a new connection per request).
    `proxy_to`: `host:port` the proxy forwards to (default: this nginx's own files on `port`)."""
    access_log, include, upstream = "    access_log off;\n", "", ""
    origin = proxy_to or f"127.0.0.1:{port}"
    proxy_target = f"http://{origin}"
    if metadata:
        fields = "".join(f',"{f}":"$http_x_amz_meta_s3eg_{f.replace("-", "_")}"' for f in META_FIELDS)
        access_log = (f"    log_format s3eg escape=json "
                      f"'{{\"method\":\"$request_method\",\"uri\":\"$uri\",\"status\":\"$status\"{fields}}}';\n"
                      f"    access_log {ndir}/meta.log s3eg;\n")
        include = f"        include {ndir}/meta.conf;\n"
    if upstream_keepalive:
        upstream = (f"    upstream backend {{\n        server {origin};\n"
                    f"        keepalive {upstream_keepalive};\n    }}\n")
        proxy_target = "http://backend"
    return NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", dir=ndir, port=port,
                             proxy_port=proxy_port, worker_connections=worker_connections, access_log=access_log,
                             include=include, upstream=upstream, proxy_target=proxy_target)


class Nginx:
    """nginx serving `workdir/nginx/data` on `endpoint` (objects of bucket `bench` are files in `data/bench`),
    and its own proxy_pass to it on `proxy_endpoint` (or to another nginx: `proxy_to`, see `nginx_conf`).
    `dirname`: its folder in `workdir`, for a second instance."""

    name = "nginx"

    def __init__(self, workdir: Path, dirname: str = "nginx", **options) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(exe).exists():
            raise s3gw.HarnessError("nginx not found: apt-get install nginx-light (make bench installs it)")
        version = subprocess.run([exe, "-V"], capture_output=True, text=True).stderr
        if "http_dav_module" not in version:
            raise s3gw.HarnessError("this nginx lacks the WebDAV module (PUT); install nginx-light or nginx-full")
        self.dir = workdir / dirname
        for sub in ("data/bench", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "meta.conf").write_text("")
        port, proxy_port = s3gw.free_port(), s3gw.free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(nginx_conf(self.dir, port, proxy_port, **options))
        self.proc = subprocess.Popen([exe, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proxy_endpoint = f"http://127.0.0.1:{proxy_port}"
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise s3gw.HarnessError(f"nginx exited ({self.proc.returncode}): {(self.dir / 'error.log').read_text()}")
            try:
                if s3gw.http_request("GET", self.endpoint + "/", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise s3gw.HarnessError("nginx did not answer within 15s")
            time.sleep(0.1)

    def store(self, src: Path, key: str) -> str:
        """Copies `src` into nginx as object `bench/key` (served as stored); returns its URL."""
        shutil.copyfile(src, self.dir / "data" / "bench" / key)
        return f"{self.endpoint}/bench/{key}"

    def logged_puts(self, uri: str) -> list[dict]:
        """The successful PUTs of `uri` in nginx's metadata log, oldest first (needs `metadata=True`)."""
        import json

        entries = [json.loads(line) for line in (self.dir / "meta.log").read_text().splitlines() if line.strip()]
        return [e for e in entries if e["method"] == "PUT" and e["uri"] == uri and e["status"] in ("201", "204")]

    def serve_metadata(self, uri: str, puts: int) -> None:
        """Reloads nginx so `uri` answers with the metadata of its last successful PUT (needs `metadata=True`).
        `puts`: how many successful PUTs of `uri` there have been. nginx writes a request's log line after its
        answer, so the last PUT's line can still be missing when the client already has the answer; serving the
        previous PUT's metadata over the new body would make every encrypted GET fail its tag check."""
        deadline = time.monotonic() + 10
        while len(logged := self.logged_puts(uri)) < puts and time.monotonic() < deadline:
            time.sleep(0.05)
        if len(logged) < puts or not logged[-1]["version"]:
            raise s3gw.HarnessError(f"{len(logged)} of {puts} encrypted PUTs of {uri} in the nginx log "
                                    "(is encryption on?)")
        last = logged[-1]
        lines = [f"location = {uri} {{", "    dav_methods PUT DELETE;", "    create_full_put_path on;"]
        lines += [f'    add_header x-amz-meta-s3eg-{f} "{last[f]}" always;' for f in META_FIELDS if last[f]]
        lines.append("}")
        (self.dir / "meta.conf").write_text("\n".join(lines) + "\n")
        old_workers = self._workers()
        self.proc.send_signal(signal.SIGHUP)
        # The reload is done when the workers of the old configuration have exited: until then a connection the
        # gateway opened before (its pool, from the PUT) is served without the metadata, and the gateway passes
        # the stored ciphertext through as a plain object.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, headers, _ = s3gw.http_request("HEAD", self.endpoint + uri, timeout=2)
            if (status == 200 and headers.get("x-amz-meta-s3eg-wrapped-key") == last["wrapped-key"]
                    and not old_workers & self._workers()):
                return
            time.sleep(0.1)
        raise s3gw.HarnessError("nginx did not pick up the metadata after a reload (or its old workers did not exit)")

    def pids(self) -> list[int]:
        """The master's and its workers' PIDs (whose CPU time is the backend's)."""
        return [self.proc.pid, *sorted(self._workers())]

    def _workers(self) -> set[int]:
        """PIDs of the master's worker processes."""
        workers = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # the field after the state: the parent's PID
                workers.add(int(stat.parent.name))
        return workers

    def stop(self) -> None:
        """Graceful stop of master and workers; killed after 10 s."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def put_encrypted(nginx: Nginx, gw: s3gw.Gateway, src: Path, key: str = "enc") -> str:
    """PUTs `src` through the encrypting gateway `gw` into nginx as `bench/key` and has nginx serve its metadata
    back, so GETs through the gateway decrypt it; returns the object's URL on the gateway."""
    url = f"{gw.endpoint}/bench/{key}"
    before = len(nginx.logged_puts(f"/bench/{key}"))
    _, code = transfer("PUT", url, gw.access_key, gw.secret_key, src)
    if code not in (200, 201, 204):
        raise s3gw.HarnessError(f"PUT {url}: HTTP {code}")
    nginx.serve_metadata(f"/bench/{key}", puts=before + 1)
    return url


# ---- curl

def header_args(headers: dict[str, str]) -> list[str]:
    """curl `-H` arguments for `headers` (Content-Length is curl's own)."""
    args: list[str] = []
    for k, v in headers.items():
        if k.lower() != "content-length":
            args += ["-H", f"{k}: {v}"]
    return args


def transfer(method: str, url: str, access: str, secret: str, src: Path | None) -> tuple[float, int]:
    """One signed (UNSIGNED-PAYLOAD) transfer with curl: a PUT of `src`, else a GET; returns (MiB/s, HTTP status)."""
    headers = s3gw.sigv4_headers(method, url, access, secret,
                                 headers={"content-length": str(src.stat().st_size)} if src else None)
    cmd = ["curl", "-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code} %{speed_upload} %{speed_download}",
           "-H", "Expect:", *header_args(headers)]
    cmd += ["-T", str(src), url] if src else [url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise s3gw.HarnessError(f"curl {method} {url} failed: {out.stderr}")
    code, up, down = out.stdout.split()
    speed = float(up if src else down)
    return speed / (1 << 20), int(code)


def checked_transfer(what: str, method: str, url: str, access: str, secret: str, src: Path | None) -> float:
    """`transfer`, raising unless the answer is 200, 201 or 204 (`what` names it in the error); returns MiB/s."""
    speed, code = transfer(method, url, access, secret, src)
    if code not in (200, 201, 204):
        raise s3gw.HarnessError(f"{what}: HTTP {code} from {url}")
    return speed


# ---- CPU time: a figure that load from other processes hardly moves

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (its ended threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children that have ended and been waited for (the curl of a
    transfer, once `subprocess.run` returned)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds(proc_stat: str | None = None) -> float:
    """CPU seconds all cores of the machine have been busy since boot (the `cpu` line of /proc/stat less its idle
    and iowait; guest time is already inside user): every process's, other people's included."""
    text = proc_stat if proc_stat is not None else Path("/proc/stat").read_text()
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(f) for f in fields[1:9]]  # user nice system idle iowait irq softirq steal
            return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    raise ValueError("no cpu line in /proc/stat")


def cores() -> int:
    """The CPUs this bench (and everything it starts) may run on."""
    return len(os.sched_getaffinity(0))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of process `pid` so far (thread id -> seconds); empty once it is gone."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


@dataclass
class Cost:
    """One transfer's wall seconds, the CPU seconds each process of its side used meanwhile (role -> seconds, e.g.
    gateway, nginx, curl), how many CPU seconds the whole machine was busy (other people's processes too), and the
    CPU seconds of the side's busiest single thread with its role: the transfer took at least that long."""
    seconds: float
    cpu: dict[str, float]
    machine_busy: float
    busiest_thread: float = 0.0
    busiest_role: str = ""
    #: Each role's busiest thread (CPU seconds), the client's being its whole process.
    busiest_by_role: dict[str, float] = field(default_factory=dict)

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())


class CostMeter:
    """Measures `Cost`s of transfers: `processes` maps a role to a function returning the PIDs whose CPU time is
    that role's (read before and after each transfer); the client's CPU time (role `client`) is the CPU time of the
    children the transfer waited for (its curl)."""

    def __init__(self, processes: dict[str, Callable[[], list[int]]], client: str = "curl") -> None:
        self.processes = processes
        self.client = client

    def _sample(self) -> tuple[dict[str, float], dict[tuple[str, int], float]]:
        """Each role's CPU seconds, and each of its threads' (role, thread id) -> seconds."""
        totals, threads = {}, {}
        for role, pids in self.processes.items():
            totals[role] = 0.0
            for pid in pids():
                totals[role] += cpu_seconds(pid)
                threads.update({(role, tid): t for tid, t in thread_cpu_seconds(pid).items()})
        return totals, threads

    def measure(self, transfer: Callable[[], T], seconds: Callable[[T], float] | None = None) -> tuple[T, Cost]:
        """Runs `transfer`; its result and its `Cost`. `seconds`: the transfer's own time from its result (curl's
        time_total, without the process start), else the wall time around it. The client (curl, also with
        --parallel) runs on one thread, so its CPU time counts as one thread's."""
        (before, threads_before), client, busy = self._sample(), children_cpu_seconds(), machine_busy_seconds()
        started = time.perf_counter()
        result = transfer()
        wall = time.perf_counter() - started
        (after, threads_after), client_after, busy_after = self._sample(), children_cpu_seconds(), machine_busy_seconds()
        cpu = {role: after[role] - before[role] for role in self.processes}
        cpu[self.client] = client_after - client
        # A thread started meanwhile counts from zero; one that ended meanwhile is not seen (its process's total is).
        used = [(t - threads_before.get(key, 0.0), key[0]) for key, t in threads_after.items()]
        busiest, role = max(used + [(cpu[self.client], self.client)])
        by_role = {self.client: cpu[self.client]}
        for t, r in used:
            by_role[r] = max(by_role.get(r, 0.0), t)
        return result, Cost(seconds(result) if seconds else wall, cpu, busy_after - busy, busiest, role, by_role)


def cpu_bound_ceiling(baseline_seconds: float, candidate_cpu: float, cpus: int, busiest_thread: float = 0.0) -> float:
    """The highest throughput ratio candidate / baseline (same bytes moved) that `cpus` cores allow when the
    candidate's processes need `candidate_cpu` CPU seconds together and its busiest thread `busiest_thread`: the
    candidate takes at least candidate_cpu / cpus seconds even with every core busy for it alone, and at least as
    long as any one of its threads runs."""
    return baseline_seconds / max(candidate_cpu / cpus, busiest_thread)


def cpu_budget_for(goal: float, baseline_seconds: float, cpus: int) -> float:
    """The most CPU seconds the candidate's processes may need together for ratio `goal` to be possible at all."""
    return cpus * baseline_seconds / goal


def print_costs(label: str, costs: list[Cost], gib: float, indent: str = "  ") -> None:
    """One line: each role's median CPU seconds per GiB, their total, the wall seconds per GiB, and how many cores
    the side kept busy (its processes; the whole machine's in brackets, other people's work included)."""
    roles = list(costs[0].cpu)
    per_role = {role: statistics.median(c.cpu[role] / gib for c in costs) for role in roles}
    total = statistics.median(c.total_cpu / gib for c in costs)
    wall = statistics.median(c.seconds / gib for c in costs)
    used = statistics.median(c.total_cpu / c.seconds for c in costs)
    machine = statistics.median(c.machine_busy / c.seconds for c in costs)
    busiest = statistics.median(c.busiest_thread / gib for c in costs)
    role = statistics.mode(c.busiest_role for c in costs)
    print(f"{indent}{label:<14} CPU s/GiB " + ", ".join(f"{role} {v:.2f}" for role, v in per_role.items())
          + f"; total {total:.2f} (runs: {runs([c.total_cpu / gib for c in costs], '{:.2f}')}); busiest thread "
          f"{busiest:.2f} ({role}); wall {wall:.2f} s/GiB; cores busy {used:.2f} of {cores()} (machine {machine:.2f})",
          flush=True)


def print_ceiling(label: str, candidate: list[Cost], baseline: list[Cost], goal: float, gib: float,
                  indent: str = "  ") -> None:
    """What the cores allow for `label` (candidate / baseline, throughput): per round, `cpu_bound_ceiling` of the
    candidate's CPU against the baseline's time, and the CPU the candidate's processes could need at most for
    `goal`; medians, with the ceiling's spread. The candidate's processes (gateway, backend, client) share the
    same cores, so a ratio above the ceiling is impossible however fast the rest of the path gets. Also the ratio
    if the candidate kept as many cores busy as the baseline did (baseline CPU / candidate CPU): what the ratio
    tends to on a saturated machine, and a practical bound when the baseline's own pipeline already keeps the
    cores as busy as such a pipeline can."""
    cpus = cores()
    ceilings = [cpu_bound_ceiling(b.seconds, c.total_cpu, cpus, c.busiest_thread) for c, b in zip(candidate, baseline)]
    budget = statistics.median(cpu_budget_for(goal, b.seconds, cpus) / gib for b in baseline)
    thread_budget = statistics.median(b.seconds / goal / gib for b in baseline)
    needed = statistics.median(c.total_cpu / gib for c in candidate)
    busiest = statistics.median(c.busiest_thread / gib for c in candidate)
    short = needed > budget or busiest > thread_budget
    saturated = statistics.median(b.total_cpu / c.total_cpu for c, b in zip(candidate, baseline))
    print(f"{indent}CPU-bound ceiling of {label}: median {statistics.median(ceilings):.2f} spread {spread(ceilings)} "
          f"({cpus} cores for all its processes); goal {goal} needs <= {budget:.2f} CPU s/GiB of them and no thread "
          f"above {thread_budget:.2f}, they used {needed:.2f} and {busiest:.2f}"
          f"{' (reachable only by cutting CPU)' if short else ''}; at the baseline's core use: {saturated:.2f}",
          flush=True)


def print_thread_bound(label: str, candidate: list[Cost], baseline: list[Cost], gib: float, role: str = "gateway",
                       indent: str = "  ") -> None:
    """What one stream would reach with cores to spare for `role` (a client and backend on other machines, as in
    production, where this machine's co-located nginx and curl take no core from it): a single stream can go no
    faster than its busiest thread of `role` runs, so the ratio `label` is at most, per round, the baseline's busiest
    `role` thread over the candidate's. Medians, with the spread."""
    bounds = [b.busiest_by_role[role] / c.busiest_by_role[role] for c, b in zip(candidate, baseline)
              if c.busiest_by_role.get(role) and b.busiest_by_role.get(role)]
    if not bounds:
        return
    print(f"{indent}{label} with cores to spare for the {role} (its busiest thread bounds one stream): median "
          f"{statistics.median(bounds):.2f} spread {spread(bounds)}; its busiest thread "
          f"{statistics.median(c.busiest_by_role[role] for c in candidate) / gib:.2f} s/GiB against "
          f"{statistics.median(b.busiest_by_role[role] for b in baseline) / gib:.2f}", flush=True)


# ---- rounds and statistics

def interleaved(rounds: int, sides: dict[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Runs every side once per round, round after round, so that load from other processes on a shared machine
    hits all sides alike; returns each side's results in round order. Each round starts one side later than the
    one before (a b c, b c a, c a b, ...): the order stays the same around the circle, so every side still runs
    next to the same neighbours, but no side is always first or always second. A fixed order biased the ratios by
    a few per cent (the side right after another got measurably less CPU time)."""
    results: dict[str, list[T]] = {name: [] for name in sides}
    for r in range(rounds):
        for name in rotation(list(sides), r):
            results[name].append(sides[name]())
    return results


def rotation(names: list[str], round_index: int) -> list[str]:
    """The order of the sides in round `round_index` (0-based): the same circle, starting one side later each round."""
    start = round_index % len(names)
    return names[start:] + names[:start]


def ratios(candidate: list[float], baseline: list[float]) -> list[float]:
    """candidate / baseline per round (the pair that ran back to back, least moved by load changes)."""
    return [c / b for c, b in zip(candidate, baseline)]


def runs(values: list[float], fmt: str = "{:.0f}") -> str:
    """'a, b, c': every round's value."""
    return ", ".join(fmt.format(v) for v in values)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """'min-max' of the rounds."""
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"
