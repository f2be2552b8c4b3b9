#!/usr/bin/env python3
"""A real, small Kubernetes control plane for the operator's tests and benchmark: etcd (Debian's etcd-server),
kube-apiserver and kube-controller-manager 1.20.2 (built from Debian's source package by scripts/kube-build.sh).

    kube_cluster.py --dir DIR [--ready-file F] [--no-controller-manager] [--remove-dir]

Everything lives under DIR (etcd's data on /dev/shm when available) and listens on free 127.0.0.1 ports. When the
API server answers /readyz, the script writes the ready file (JSON, atomically) and prints `READY <file>`:

    {"server": "https://127.0.0.1:P", "ca": "DIR/pki/ca.crt", "adminToken": "...", "operatorToken": "...",
     "adminKubeconfig": "DIR/admin.kubeconfig", "operatorKubeconfig": "DIR/operator.kubeconfig",
     "operatorUser": "system:serviceaccount:s3gateway-system:encryption-gateway-operator", "etcd": "http://127.0.0.1:E",
     "pids": {...}, "logs": {...}}

Identities come from a token file: `admin` (group system:masters) and the operator's service account (only what
config/rbac grants it, since authorization is RBAC). The controller manager runs garbage collection, the
Deployment/ReplicaSet controllers and the namespace controller; there is no kubelet, so pods stay Pending.

It stops everything on SIGTERM/SIGINT and when its parent process dies (a crashed test run leaves nothing behind);
with `--remove-dir` it then removes DIR too (the tests' shared cluster: its CA key and tokens do not stay in /tmp).
A test that needs to cut connections starts a second API server on the same etcd (`--apiserver-only --etcd URL
--dir SAME_DIR`) and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VERSION = "1.20.2"
OPERATOR_SA = "system:serviceaccount:s3gateway-system:encryption-gateway-operator"
CONTROLLERS = "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach," \
              "-persistentvolume-binder,-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner"


def kube_bin_dir() -> Path:
    cache = os.environ.get("S3GW_KUBE_CACHE") or os.path.expanduser(f"~/.cache/s3gw/kube-{VERSION}")
    return Path(cache) / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
         "-subj", "/CN=s3gw-test-cluster-ca"], d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
                                  "extendedKeyUsage=serverAuth\n")
    run(["openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"], d)
    run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "7", "-extfile", "server.ext"], d)
    # Service-account token signing key (required flags since 1.20; the tests authenticate with static tokens).
    run(["openssl", "genrsa", "-out", "sa.key", "2048"], d)
    run(["openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], d)


def kubeconfig(path: Path, server: str, ca: Path, token: str, namespace: str = "default") -> None:
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: user
  user:
    token: {token}
contexts:
- name: test
  context:
    cluster: test
    user: user
    namespace: {namespace}
""")


class Cluster:
    def __init__(self, base: Path, with_kcm: bool = True, etcd_url: str | None = None, port: int = 0,
                 extra_args: list[str] | None = None) -> None:
        self.base = base
        self.port = port
        self.extra_args = extra_args or []
        self.shared_etcd = etcd_url is not None
        self.with_kcm = with_kcm
        self.etcd_url = etcd_url
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, str] = {}
        self.bin = kube_bin_dir()

    def spawn(self, name: str, cmd: list[str]) -> None:
        log = self.base / (f"{name}-{self.port}.log" if self.shared_etcd else f"{name}.log")
        self.logs[name] = str(log)
        with open(log, "ab") as f:
            self.procs[name] = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def start(self) -> dict:
        for binary in ("kube-apiserver", "kube-controller-manager"):
            if not (self.bin / binary).is_file():
                raise SystemExit(f"kube_cluster: {self.bin / binary} is missing: run scripts/kube-build.sh "
                                 "(scripts/deps.sh test installs its prerequisites)")
        pki = self.base / "pki"
        if not (pki / "ca.crt").exists():
            make_pki(pki)
        tokens_file = self.base / "tokens.csv"
        if tokens_file.exists():
            admin, operator = [line.split(",")[0] for line in tokens_file.read_text().splitlines()[:2]]
        else:
            admin, operator = secrets.token_hex(16), secrets.token_hex(16)
            tokens_file.write_text(
                f'{admin},admin,admin,"system:masters"\n'
                f'{operator},{OPERATOR_SA},operator-uid,"system:serviceaccounts,system:serviceaccounts:s3gateway-system"\n')

        if self.etcd_url is None:
            if not shutil.which("etcd"):
                raise SystemExit("kube_cluster: etcd is missing (apt-get install etcd-server; scripts/deps.sh test)")
            shm = Path("/dev/shm")
            data = Path(os.environ.get("S3GW_ETCD_DATA") or (shm if shm.is_dir() and os.access(shm, os.W_OK) else self.base)) \
                / f"s3gw-etcd-{os.getpid()}-{secrets.token_hex(4)}"
            self.etcd_data = data
            client, peer = free_port(), free_port()
            self.etcd_url = f"http://127.0.0.1:{client}"
            self.spawn("etcd", ["etcd", "--name", "test", "--data-dir", str(data),
                                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                                "--initial-cluster", f"test=http://127.0.0.1:{peer}",
                                "--log-level", "warn", "--quota-backend-bytes", str(4 << 30)])
            self.wait_http(self.etcd_url + "/health", "etcd", 30)

        port = self.port or free_port()
        server = f"https://127.0.0.1:{port}"
        self.spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}", "--insecure-port=0",
            f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
            f"--cert-dir={self.base / 'certs'}",
            f"--token-auth-file={tokens_file}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/12",  # room for thousands of Services (the benchmark)
            # No kubelet and no token controller: pods need no service-account token to be created.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false", "--v=1",
            *self.extra_args,
        ])
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.wait_http(server + "/readyz", "kube-apiserver", 120, ctx=ctx, token=admin)

        # A second API server on a shared etcd gets its own kubeconfigs (the first one's stay valid).
        suffix = f"-{port}" if self.shared_etcd else ""
        admin_kc = self.base / f"admin{suffix}.kubeconfig"
        operator_kc = self.base / f"operator{suffix}.kubeconfig"
        kubeconfig(admin_kc, server, pki / "ca.crt", admin)
        kubeconfig(operator_kc, server, pki / "ca.crt", operator, namespace="s3gateway-system")
        if self.with_kcm:
            self.spawn("kube-controller-manager", [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={admin_kc}", f"--controllers={CONTROLLERS}",
                "--leader-elect=false", "--secure-port=0", "--port=0",
                "--use-service-account-credentials=false", "--concurrent-gc-syncs=5", "--v=1",
            ])
        return {
            "server": server, "ca": str(pki / "ca.crt"), "adminToken": admin, "operatorToken": operator,
            "adminKubeconfig": str(admin_kc), "operatorKubeconfig": str(operator_kc), "operatorUser": OPERATOR_SA,
            "etcd": self.etcd_url, "version": VERSION,
            "pids": {name: p.pid for name, p in self.procs.items()}, "logs": self.logs,
        }

    def wait_http(self, url: str, name: str, limit: float, ctx=None, token: str | None = None) -> None:
        deadline = time.monotonic() + limit
        last = ""
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"kube_cluster: {name} exited with {proc.returncode}:\n{self.tail(name)}")
            try:
                req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
                with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        return
            except Exception as e:  # not up yet
                last = str(e)
            time.sleep(0.2)
        raise SystemExit(f"kube_cluster: {name} not ready after {limit}s ({last}):\n{self.tail(name)}")

    def tail(self, name: str, n: int = 30) -> str:
        try:
            return "\n".join(Path(self.logs[name]).read_text(errors="replace").splitlines()[-n:])
        except Exception:
            return ""

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        data = getattr(self, "etcd_data", None)
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--no-controller-manager", action="store_true")
    ap.add_argument("--apiserver-only", action="store_true", help="reuse --dir's PKI and tokens with --etcd")
    ap.add_argument("--etcd", help="an existing etcd URL (with --apiserver-only)")
    ap.add_argument("--port", type=int, default=0, help="the API server's port (default: a free one)")
    ap.add_argument("--apiserver-arg", action="append", default=[], help="an extra kube-apiserver flag (repeatable)")
    ap.add_argument("--remove-dir", action="store_true",
                    help="remove --dir (PKI, tokens, logs) once everything has stopped")
    args = ap.parse_args()
    # A test runner may start us with SIGTERM/SIGINT blocked (the mask is inherited across exec); unblock them so we,
    # and the daemons we start, stop when asked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    parent = os.getppid()
    cluster = Cluster(base, with_kcm=not (args.no_controller_manager or args.apiserver_only),
                      etcd_url=args.etcd if args.apiserver_only else None, port=args.port,
                      extra_args=args.apiserver_arg)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = cluster.start()
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            Path(tmp).write_text(json.dumps(info))
            os.replace(tmp, args.ready_file)
        print(f"READY {args.ready_file or json.dumps(info)}", flush=True)
        while not stopping and os.getppid() == parent:
            for name, p in cluster.procs.items():
                if p.poll() is not None and not stopping:
                    print(f"kube_cluster: {name} exited with {p.returncode}:\n{cluster.tail(name)}", file=sys.stderr, flush=True)
                    stopping = True
            time.sleep(0.3)
    finally:
        cluster.stop()
        if args.remove_dir:
            # It holds the cluster's CA key and admin token: not left behind in a shared temporary directory.
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
