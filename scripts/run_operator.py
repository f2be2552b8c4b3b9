#!/usr/bin/env python3
"""`make run-operator`: the operator reconciling an EncryptionGateway on a real kube-apiserver, for a newcomer to
watch. Starts the project's control plane (etcd, kube-apiserver and kube-controller-manager 1.20.2 built by
scripts/kube-build.sh; no kubelet), installs config/default with kubectl, runs the operator binary under its own
ServiceAccount's identity (so RBAC is config/rbac's), applies config/samples/minimal.yaml and shows the children
and the status; then plays the kubelet's part (marks the Deployment available) to show the resource turn Ready.

  python3 scripts/run_operator.py [--demo-only]      (make run-operator [DEMO_ONLY=1])
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "KubeAPIServer"))
sys.path.insert(0, str(REPO / "scripts"))

import kube_cluster  # noqa: E402
import s3gw  # noqa: E402

BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
NAMESPACE = "demo"
SAMPLE = REPO / "config/samples/minimal.yaml"


def say(text: str = "") -> None:
    print(text, flush=True)


class Kubectl:
    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, show: bool = False, check: bool = True, stdin: str | None = None) -> str:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig}", *args]
        if show:
            say(f"\n$ kubectl {' '.join(args)}")
        result = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        if show:
            say(result.stdout.rstrip())
        return result.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "-o", "json"))


def wait(what: str, condition, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit:.0f}s waiting for {what}")
        time.sleep(0.3)


def conditions(resource: dict) -> dict:
    return {c["type"]: c for c in resource.get("status", {}).get("conditions", [])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-only", action="store_true", help="exit after the demo")
    parser.add_argument("--operator", default=os.environ.get("OPERATOR_BIN"), help="operator binary")
    args = parser.parse_args()
    operator_bin = Path(args.operator) if args.operator else Path(subprocess.run(
        ["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, capture_output=True, text=True,
        check=True).stdout.strip()) / "encryption-gateway-operator"
    if not operator_bin.exists():
        say(f"run-operator: {operator_bin} not found: `make run-operator` builds it")
        return 1
    for tool in ("kubectl", "etcd"):
        if not shutil.which(tool):
            say(f"run-operator: {tool} not found (scripts/deps.sh test installs etcd; kubectl comes with the machine)")
            return 1

    workdir = REPO / ".work" / "run-operator"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cluster = kube_cluster.Cluster(workdir)
    operator = None
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    try:
        say(f"run-operator: starting etcd, kube-apiserver and kube-controller-manager {kube_cluster.VERSION} ...")
        info = cluster.start()
        admin = Kubectl(info["adminKubeconfig"])
        say(f"run-operator: API server at {info['server']}")

        say(f"\n{BOLD}1. Install the operator's manifests: kubectl apply -k config/default{RESET}")
        # Kubernetes 1.20 predates the CRD's x-kubernetes-validations: kubectl's schema check and server-side
        # apply refuse the field, a client-side apply lets the server drop it (clusters from 1.25 need neither).
        admin("apply", "--validate=false", "-k", str(REPO / "config/default"), show=True)
        # Not `kubectl wait --for=condition=Established`: it exits at once with ".status.conditions accessor error"
        # when it looks before the API server has written the CRD's first conditions.
        wait("the CRD to be Established", lambda: conditions(admin.json("get", "crd/encryptiongateways.s3gateway.dev"))
             .get("Established", {}).get("status") == "True")
        say("(the manager Deployment cannot start here: there is no kubelet; the operator runs next to the cluster "
            "instead, with the ServiceAccount's token, so it has exactly config/rbac's permissions)")

        say(f"\n{BOLD}2. Run the operator{RESET}")
        log_path = workdir / "operator.log"
        probes, metrics = s3gw.free_port(), s3gw.free_port()
        operator = subprocess.Popen(
            [str(operator_bin), f"--kubeconfig={info['operatorKubeconfig']}", "--leader-elect",
             "--leader-election-namespace=s3gateway-system", f"--health-probe-bind-address=127.0.0.1:{probes}",
             f"--metrics-bind-address=127.0.0.1:{metrics}", "--gateway-image=s3-encryption-gateway/gateway:demo"],
            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        def operator_ready() -> bool:
            if operator.poll() is not None:
                raise RuntimeError(f"the operator exited with {operator.returncode}:\n{log_path.read_text()}")
            try:
                return s3gw.http_request("GET", f"http://127.0.0.1:{probes}/readyz", timeout=2)[0] == 200
            except OSError:
                return False
        wait("the operator's /readyz", operator_ready)
        say(f"operator ready (log: {log_path}, metrics: http://127.0.0.1:{metrics}/metrics)")

        say(f"\n{BOLD}3. Create a gateway: kubectl apply -n {NAMESPACE} -f config/samples/minimal.yaml{RESET}")
        admin("create", "namespace", NAMESPACE)
        admin("apply", "-n", NAMESPACE, "-f", str(SAMPLE), show=True)
        wait("the operator to report a status", lambda: admin.json("-n", NAMESPACE, "get", "egw", "minimal")
             .get("status", {}).get("observedGeneration") == 1)
        admin("-n", NAMESPACE, "get", "configmap,deployment,service,poddisruptionbudget,networkpolicy",
              "-l", "s3gateway.dev/gateway=minimal", show=True)
        admin("-n", NAMESPACE, "get", "egw", "minimal", show=True)
        ready = conditions(admin.json("-n", NAMESPACE, "get", "egw", "minimal"))["Ready"]
        say(f"Ready={ready['status']} ({ready['reason']}): no kubelet runs the pods here.")

        say(f"\n{BOLD}4. Play the kubelet: report the gateway's pods running and ready{RESET}")
        replicas = admin.json("-n", NAMESPACE, "get", "deployment", "minimal")["spec"].get("replicas", 1)
        selector = "s3gateway.dev/gateway=minimal"
        wait(f"{replicas} pods", lambda: len(admin.json("-n", NAMESPACE, "get", "pods", "-l", selector)["items"]) == replicas)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for pod in admin.json("-n", NAMESPACE, "get", "pods", "-l", selector)["items"]:
            # What a kubelet reports; the ReplicaSet and Deployment controllers then count the pod available.
            pod["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}
            admin("replace", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}/status",
                  "-f", "-", stdin=json.dumps(pod))
        say(f"{replicas} pods marked Running and Ready")
        wait("Ready=True", lambda: conditions(admin.json("-n", NAMESPACE, "get", "egw", "minimal"))
             .get("Ready", {}).get("status") == "True")
        admin("-n", NAMESPACE, "get", "egw", "minimal", show=True)
        admin("-n", NAMESPACE, "get", "events.events.k8s.io", "--field-selector", "regarding.name=minimal",
              "-o", "custom-columns=TYPE:.type,REASON:.reason,NOTE:.note", show=True, check=False)
        say(f"\n{BOLD}The operator reconciled the EncryptionGateway into its children and reports it Ready.{RESET}")

        if args.demo_only:
            say("\nrun-operator: demo done (--demo-only); stopping")
            return 0
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        say(f"\nTry it yourself in another shell:\n  export KUBECONFIG={info['adminKubeconfig']}\n"
            f"  kubectl -n {NAMESPACE} edit egw minimal        # e.g. spec.replicas: 5, then watch the Deployment\n"
            f"  kubectl -n {NAMESPACE} delete service minimal  # the operator puts it back\n"
            f"{BOLD}Press Ctrl-C to stop the operator and the cluster.{RESET}")
        while not stopping:
            if operator.poll() is not None:
                say(f"run-operator: the operator exited with {operator.returncode}; log: {log_path}")
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, SystemExit) as exc:
        say(f"run-operator: {exc}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if operator is not None and operator.poll() is None:
            operator.send_signal(signal.SIGTERM)
            try:
                code = operator.wait(40)
                say(f"run-operator: operator stopped (exit code {code})")
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait()
        cluster.stop()
        say("run-operator: cluster stopped")


if __name__ == "__main__":
    sys.exit(main())
