#!/usr/bin/env python3
"""Pass-through overhead: single-stream PUT and GET of one large object, directly against a fast backend (nginx
with WebDAV PUT) vs through the gateway (GATEWAY_PASSTHROUGH=true) in front of the same nginx.

  python3 bench/passthrough.py [--size-mib 1024] [--repeat 3]

Prints MiB/s per path (best and median of alternating runs) and the ratios of the best runs, gateway/direct
(target >= 0.8) and gateway/nginx-proxy (nginx's own proxy_pass in front of the same files: what a plain
pass-through proxy that copies bytes through user space reaches on the same machine). nginx does not check signatures; the
gateway does, so every request is SigV4-signed (UNSIGNED-PAYLOAD). curl moves the bytes on both paths.
Everything started here is stopped at the end; data lives in a temp dir (on /dev/shm when it has room, so the
disk is not what is measured).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import s3gw  # noqa: E402

NGINX_CONF = """\
{user}
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
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
        location / {{
            autoindex on;
            dav_methods PUT DELETE MKCOL;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
    # A plain pass-through proxy in front of the same files: the baseline a proxy
    # that copies every byte through user space can be held to.
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://127.0.0.1:{port};
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


def pick_workdir(size: int) -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * size + (512 << 20):
        return Path(tempfile.mkdtemp(prefix="s3gw-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="s3gw-bench-"))


def start_nginx(workdir: Path) -> tuple[subprocess.Popen, str, str]:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        raise s3gw.HarnessError("nginx not found: apt-get install nginx-light (make bench installs it)")
    version = subprocess.run([exe, "-V"], capture_output=True, text=True).stderr
    if "http_dav_module" not in version:
        raise s3gw.HarnessError("this nginx lacks the WebDAV module (PUT); install nginx-light or nginx-full")
    ndir = workdir / "nginx"
    for sub in ("data/bench", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (ndir / sub).mkdir(parents=True, exist_ok=True)
    port, proxy_port = s3gw.free_port(), s3gw.free_port()
    conf = ndir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=ndir, port=port, proxy_port=proxy_port,
                                      user="user root;" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-p", str(ndir), "-c", str(conf), "-e", str(ndir / "error.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise s3gw.HarnessError(f"nginx exited ({proc.returncode}): {(ndir / 'error.log').read_text()}")
        try:
            if s3gw.http_request("GET", endpoint + "/", timeout=1)[0] == 200:
                return proc, endpoint, f"http://127.0.0.1:{proxy_port}"
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise s3gw.HarnessError("nginx did not answer within 15s")
        time.sleep(0.1)


def stop_nginx(proc: subprocess.Popen | None) -> None:
    """Graceful stop of master and workers; killed after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGQUIT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def curl(method: str, url: str, access: str, secret: str, src: Path | None) -> tuple[float, int]:
    """One transfer with curl; returns (MiB/s, HTTP status)."""
    headers = s3gw.sigv4_headers(method, url, access, secret,
                                 headers={"content-length": str(src.stat().st_size)} if src else None)
    cmd = ["curl", "-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code} %{speed_upload} %{speed_download}",
           "-H", "Expect:"]
    for k, v in headers.items():
        if k != "content-length":
            cmd += ["-H", f"{k}: {v}"]
    cmd += ["-T", str(src), url] if src else [url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise s3gw.HarnessError(f"curl {method} {url} failed: {out.stderr}")
    code, up, down = out.stdout.split()
    speed = float(up if src else down)
    return speed / (1 << 20), int(code)


def measure(label: str, method: str, paths: dict[str, tuple], src: Path | None, repeat: int) -> dict[str, float]:
    """Alternate the paths run by run (so load changes hit all alike); returns the best MiB/s of each."""
    runs: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, (url, access, secret) in paths.items():
            speed, code = curl(method, url, access, secret, src)
            if code not in (200, 201, 204):
                raise s3gw.HarnessError(f"{label} {name}: HTTP {code} from {url}")
            runs[name].append(speed)
    for name, speeds in runs.items():
        print(f"  {label} {name:<11} best {max(speeds):8.1f} MiB/s  median {statistics.median(speeds):8.1f}"
              f"   (runs: {', '.join(f'{s:.0f}' for s in speeds)})", flush=True)
    return {name: max(speeds) for name, speeds in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    args = parser.parse_args()
    size = args.size_mib << 20

    workdir = pick_workdir(size)
    nginx = gw = None
    try:
        nginx, backend, plain_proxy = start_nginx(workdir)
        gw = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir, require_ready=False,
                                extra_env={"GATEWAY_PASSTHROUGH": "true", "LOG_LEVEL": "warn"}, name="gateway")
        src = workdir / "object.bin"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        print(f"bench: {args.size_mib} MiB object, single stream, {args.repeat} alternating runs per path; "
              f"nginx {backend}, gateway {gw.endpoint} (pass-through); data in {workdir}", flush=True)
        paths = {
            "direct": (f"{backend}/bench/object", "BENCHKEY", "x"),
            "nginx-proxy": (f"{plain_proxy}/bench/object", "BENCHKEY", "x"),
            "gateway": (f"{gw.endpoint}/bench/object", gw.access_key, gw.secret_key),
        }
        for label in ("PUT", "GET"):
            best = measure(label, label, paths, src if label == "PUT" else None, args.repeat)
            print(f"  ratio {label} gateway/direct (best of {args.repeat}): {best['gateway'] / best['direct']:.2f}"
                  f"   (target >= 0.80)")
            print(f"  ratio {label} gateway/nginx-proxy (best of {args.repeat}): "
                  f"{best['gateway'] / best['nginx-proxy']:.2f}", flush=True)
        return 0
    except s3gw.HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        if gw is not None:
            print(gw.log_tail(), file=sys.stderr)
        return 1
    finally:
        if gw is not None:
            try:
                gw.terminate()
            except s3gw.HarnessError as exc:
                print(f"bench: {exc}", file=sys.stderr)
        stop_nginx(nginx)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
