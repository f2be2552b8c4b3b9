"""config/default and dist/install.yaml: what `kubectl apply -k config/default` installs is complete and safe
(Namespace under Pod Security Admission `restricted`, a manager pod that passes that profile, leader election,
probes, resources, the release's images), dist/install.yaml is its current rendering, both pass the Kubernetes
schemas strictly, and `make run-operator` installs it on the real kube-apiserver and gets a sample Ready."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, operator_bin
from dockerfile import Dockerfile


def version() -> str:
    return re.search(r'version = "([^"]+)"', (ROOT / "Sources/Shared/BuildInfo.swift").read_text()).group(1)


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "config/default")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


def test_dist_install_is_the_current_rendering():
    result = subprocess.run([str(ROOT / "scripts/dist.sh"), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_installs_every_part(objects):
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["Namespace", "CustomResourceDefinition", "ServiceAccount", "Role", "RoleBinding",
                            "ClusterRole", "ClusterRoleBinding", "Deployment"])
    namespace = one(objects, "Namespace")["metadata"]["name"]
    for o in objects:
        if o["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == namespace, o["metadata"]["name"]
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "s3-encryption-gateway"
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    for binding in (one(objects, "RoleBinding"), one(objects, "ClusterRoleBinding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account


def test_namespace_enforces_pod_security_restricted(objects):
    labels = one(objects, "Namespace")["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_manager_pod_passes_the_restricted_profile(objects):
    """The rules of the `restricted` Pod Security Standard that a pod spec can break."""
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in pod.get("volumes", []))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert sc.get("runAsUser", 1) != 0 and not sc.get("privileged")
        assert sc["readOnlyRootFilesystem"] is True
        assert not any(p.get("hostPort") for p in c.get("ports", []))


def test_manager_runs_as_its_image_with_leader_election_probes_and_resources(objects):
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--leader-elect" in args or "--leader-elect=true" in args
    ports = {p["name"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert {container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]} == \
        {"/healthz", "/readyz"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    uid, gid = Dockerfile.read(ROOT / "Dockerfile.operator").user()
    assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (uid, gid)
    assert container["image"] == f"s3-encryption-gateway/operator:{version()}"
    assert f"--gateway-image=s3-encryption-gateway/gateway:{version()}" in args
    declared = {p["containerPort"] for p in container["ports"]}
    assert declared <= set(Dockerfile.read(ROOT / "Dockerfile.operator").exposed_ports())


@pytest.mark.parametrize("kubernetes", ["1.25.0", "1.30.0"])
def test_dist_install_passes_strict_schema_validation(kubernetes):
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", kubernetes,
                             str(ROOT / "dist/install.yaml")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_run_operator_installs_and_reconciles_on_a_real_api_server():
    """`make run-operator`'s script: kubectl apply -k config/default on kube-apiserver 1.20, the operator under its
    ServiceAccount, the minimal sample reconciled into its children and Ready once its pods are."""
    env = dict(os.environ, OPERATOR_BIN=str(operator_bin()))
    result = subprocess.run([sys.executable, str(ROOT / "scripts/run_operator.py"), "--demo-only"], env=env,
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    for created in ("namespace/s3gateway-system created",
                    "customresourcedefinition.apiextensions.k8s.io/encryptiongateways.s3gateway.dev created",
                    "clusterrolebinding.rbac.authorization.k8s.io/encryption-gateway-operator created",
                    "deployment.apps/encryption-gateway-operator created", "encryptiongateway.s3gateway.dev/minimal created"):
        assert created in text
    for child in ("configmap/minimal-config", "deployment.apps/minimal", "service/minimal",
                  "poddisruptionbudget.policy/minimal", "networkpolicy.networking.k8s.io/minimal"):
        assert child in text
    assert re.search(r"^minimal\s+True\s+3\s+3\s+http://minimal\.demo\.svc:80", text, re.M), text
    assert "operator stopped (exit code 0)" in text and "cluster stopped" in text
