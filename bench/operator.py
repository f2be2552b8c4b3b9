#!/usr/bin/env python3
"""Operator throughput and memory on a real control plane (`make bench-operator`).

Starts etcd + kube-apiserver + kube-controller-manager 1.20.2 (Tests/KubeAPIServer/kube_cluster.py; built by
scripts/kube-build.sh), installs the CRD and RBAC, starts the release operator under its least-privilege identity,
then creates N EncryptionGateway resources at once (default 1000, 1 replica each, three shared Secrets) and measures:

- time until every resource has its status written for its generation (children are applied before the status);
- API requests the operator made, per verb, and per reconcile;
- the operator's resident memory (VmRSS now, VmHWM peak);
- a second pass over the unchanged resources — a resync (--sync-period) and a cold restart of the operator — which
  must write nothing (no PATCH/POST/PUT/DELETE).

Timing figures are for the shared 2-core machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE")


class Kube:
    def __init__(self, server: str, ca: str, token: str) -> None:
        self.server, self.token = server, token
        self.ctx = ssl.create_default_context(cafile=ca)

    def call(self, method: str, path: str, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type,
                                              "User-Agent": "bench"})
        for attempt in range(20):
            try:
                with urllib.request.urlopen(req, timeout=60, context=self.ctx) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError as e:
                if e.code == 429 or e.code >= 500:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise
        raise RuntimeError(f"{method} {path}: retries exhausted")

    def list(self, path: str) -> list:
        items, cont = [], ""
        while True:
            page = self.call("GET", f"{path}?limit=500" + (f"&continue={cont}" if cont else ""))
            items += page.get("items", [])
            cont = page.get("metadata", {}).get("continue", "")
            if not cont:
                return items


def metrics(address: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def requests_by_verb(m: dict[str, float]) -> dict[str, float]:
    by = {}
    for k, v in m.items():
        mm = re.match(r'rest_client_requests_total\{verb="(\w+)",code="([^"]+)"\}', k)
        if mm:
            by[mm.group(1)] = by.get(mm.group(1), 0) + v
    return by


def reconciles(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("controller_runtime_reconcile_total{"))


def rss(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) // 1024
    return get("VmRSS"), get("VmHWM")


def start_operator(binary: str, kubeconfig: str, workers: int, sync_period: str, log: Path):
    proc = subprocess.Popen([binary, "--kubeconfig", kubeconfig, "--leader-elect=false",
                             "--health-probe-bind-address=127.0.0.1:0", "--metrics-bind-address=127.0.0.1:0",
                             f"--workers={workers}", f"--sync-period={sync_period}", "--gateway-image=bench/gateway:1"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "listening" and entry.get("endpoint") == "metrics":
                return proc, entry["addr"]
        if proc.poll() is not None:
            raise SystemExit(f"operator exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    raise SystemExit("operator did not start")


def wait_until_established(kubectl: list[str], crd: str, limit: float = 60.0) -> None:
    """Polls the CRD's Established condition. Not `kubectl wait`: it fails at once when its first look comes before
    the API server has written any condition (".status.conditions accessor error")."""
    deadline = time.monotonic() + limit
    while True:
        r = subprocess.run(kubectl + ["get", "crd/" + crd, "-o",
                                      'jsonpath={.status.conditions[?(@.type=="Established")].status}'],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout == "True":
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"crd/{crd} not Established after {limit:.0f} s: {r.stdout or r.stderr}")
        time.sleep(0.1)


def wait_converged(kube: Kube, ns: str, n: int, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        items = kube.list(f"/apis/s3gateway.dev/v1alpha1/namespaces/{ns}/encryptiongateways")
        done = sum(1 for o in items if o.get("status", {}).get("observedGeneration") == o["metadata"].get("generation"))
        if len(items) == n and done == n:
            return time.monotonic()
        time.sleep(0.5)
    raise SystemExit(f"not converged after {limit}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--operator", default=os.environ.get("OPERATOR_BIN"))
    args = ap.parse_args()
    # SIGTERM ends the run through the cleanup below (operator, control plane, temp files).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binary = args.operator or str(ROOT / ".build/release/encryption-gateway-operator")
    if not Path(binary).is_file():
        raise SystemExit(f"{binary} missing: swift build -c release --product encryption-gateway-operator")

    work = Path(tempfile.mkdtemp(prefix="s3gw-bench-operator-"))
    ready = work / "ready.json"
    cluster = subprocess.Popen([sys.executable, str(ROOT / "Tests/KubeAPIServer/kube_cluster.py"), "--dir", str(work),
                                "--ready-file", str(ready)], stdout=subprocess.DEVNULL)
    operator = None
    try:
        while not ready.exists():
            if cluster.poll() is not None:
                raise SystemExit("control plane did not start")
            time.sleep(0.2)
        info = json.loads(ready.read_text())
        kube = Kube(info["server"], info["ca"], info["adminToken"])
        kubectl = ["kubectl", "--kubeconfig", info["adminKubeconfig"]]
        subprocess.run(kubectl + ["apply", "--validate=false", "-f", str(ROOT / "config/crd")], check=True, capture_output=True)
        wait_until_established(kubectl, "encryptiongateways.s3gateway.dev")
        subprocess.run(kubectl + ["apply", "-f", str(ROOT / "config/manager/namespace.yaml"), "-f", str(ROOT / "config/rbac")],
                       check=True, capture_output=True)
        ns = "bench"
        kube.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for name, data in [("b", {"accessKeyID": "AK", "secretAccessKey": "SK"}), ("e", {"password": "a-long-enough-password-1"}),
                           ("c", {"accessKeyID": "CK", "secretAccessKey": "CS"})]:
            kube.call("POST", f"/api/v1/namespaces/{ns}/secrets",
                      {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})

        log = work / "operator.log"
        operator, address = start_operator(binary, info["operatorKubeconfig"], args.workers, "60s", log)
        base = metrics(address)

        def create(i: int) -> None:
            kube.call("POST", f"/apis/s3gateway.dev/v1alpha1/namespaces/{ns}/encryptiongateways", {
                "apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway", "metadata": {"name": f"gw-{i:04d}"},
                "spec": {"replicas": 1,
                         "backend": {"endpoint": "https://s3.example.com", "credentialsSecretRef": {"name": "b"}},
                         "encryption": {"passwordSecretRef": {"name": "e", "key": "password"}},
                         "clientCredentials": {"secretRef": {"name": "c"}}}})

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.count)))
        created = time.monotonic()
        t1 = wait_converged(kube, ns, args.count, 1800)
        first = metrics(address)
        rss_now, rss_peak = rss(operator.pid)
        by = requests_by_verb(first)
        by_base = requests_by_verb(base)
        delta = {v: by.get(v, 0) - by_base.get(v, 0) for v in sorted(set(by) | set(by_base))}
        recs = reconciles(first) - reconciles(base)
        deployments = len([d for d in kube.list(f"/apis/apps/v1/namespaces/{ns}/deployments")])
        configmaps = len([c for c in kube.list(f"/api/v1/namespaces/{ns}/configmaps") if c["metadata"]["name"].endswith("-config")])
        writes_first = sum(delta.get(v, 0) for v in WRITE_VERBS)
        load = os.getloadavg()
        print(f"\n== {args.count} EncryptionGateways, {args.workers} workers (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
        print(f"created in {created - t0:.1f} s; every status written {t1 - t0:.1f} s after the first create")
        print(f"children: {deployments} Deployments, {configmaps} ConfigMaps (and Services, PDBs, NetworkPolicies)")
        print(f"reconciles: {recs:.0f} ({recs / args.count:.2f} per resource)")
        print("operator API requests: " + ", ".join(f"{v} {n:.0f}" for v, n in delta.items() if n))
        print(f"writes per reconcile: {writes_first / max(recs, 1):.2f}; requests per resource: "
              f"{sum(n for v, n in delta.items() if v not in ('LIST', 'WATCH')) / args.count:.2f}")
        print(f"operator memory: RSS {rss_now} MiB, peak {rss_peak} MiB")

        # Second pass 1: a resync over the unchanged resources writes nothing. First let the world settle: the
        # controller manager is still creating pods and updating Deployment statuses, which the operator rightly
        # reflects in the gateways' statuses. Settled = no operator write for 20 s.
        def writes(m):
            return sum(requests_by_verb(m).get(v, 0) for v in WRITE_VERBS)
        settle_deadline = time.monotonic() + 600
        last, quiet_since = writes(metrics(address)), time.monotonic()
        while time.monotonic() - quiet_since < 20 and time.monotonic() < settle_deadline:
            time.sleep(2)
            now = writes(metrics(address))
            if now != last:
                last, quiet_since = now, time.monotonic()
        print(f"settled {time.monotonic() - t1:.0f} s after convergence ({last - writes_first:.0f} more writes meanwhile: "
              "Deployment status changes reflected in the gateways' status)")
        before = metrics(address)
        target = reconciles(before) + args.count
        deadline = time.monotonic() + 300
        while reconciles(metrics(address)) < target and time.monotonic() < deadline:
            time.sleep(1)
        after = metrics(address)
        resync_recs = reconciles(after) - reconciles(before)
        resync_writes = sum(requests_by_verb(after).get(v, 0) - requests_by_verb(before).get(v, 0) for v in WRITE_VERBS)
        print(f"resync pass: {resync_recs:.0f} reconciles, {resync_writes:.0f} writes")

        # Second pass 2: a restarted operator over the unchanged resources writes nothing either.
        operator.terminate()
        operator.wait(timeout=60)
        operator, address = start_operator(binary, info["operatorKubeconfig"], args.workers, "10h", work / "operator2.log")
        t2 = time.monotonic()
        deadline = time.monotonic() + 600
        while reconciles(metrics(address)) < args.count and time.monotonic() < deadline:
            time.sleep(0.5)
        restart = metrics(address)
        restart_writes = sum(requests_by_verb(restart).get(v, 0) for v in WRITE_VERBS)
        print(f"restart pass: {reconciles(restart):.0f} reconciles in {time.monotonic() - t2:.1f} s, {restart_writes:.0f} writes, "
              f"RSS {rss(operator.pid)[0]} MiB")
        ok = resync_writes == 0 and restart_writes == 0 and deployments == args.count
        print("idle check:", "ok (no writes)" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            operator.wait(timeout=60)
        cluster.terminate()
        cluster.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
