"""The deployment manifests under config/ are valid Kubernetes objects (strict schema, several versions)
and the kustomize overlay renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(p for p in (ROOT / "config").rglob("*.yaml") if p.name != "kustomization.yaml")


def validate(path: Path, version: str) -> subprocess.CompletedProcess:
    return subprocess.run(["python3", "-m", "kubernetes_validate", "--strict", "-k", version, str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("version", ["1.25.0", "1.30.0"])
def test_every_manifest_passes_strict_schema_validation(version):
    assert MANIFESTS, "no manifests under config/"
    for path in MANIFESTS:
        result = validate(path, version)
        assert result.returncode == 0, f"{path.relative_to(ROOT)} ({version}):\n{result.stdout}{result.stderr}"


def test_validator_rejects_an_unknown_field(tmp_path):
    # Guards the test above: the validator must actually fail on a bad manifest.
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\nspecc: {}\n")
    assert validate(bad, "1.30.0").returncode != 0


def test_default_overlay_renders_every_part():
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # a missing tool fails the test; it never skips
        pytest.fail("kubectl (with kustomize) not on PATH: the operator's tests and `make dist` need it too",
                    pytrace=False)
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "config" / "default")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kinds = {line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.startswith("kind:")}
    assert {"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "Role", "RoleBinding", "Deployment"} <= kinds
