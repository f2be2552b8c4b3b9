"""What the operator renders is valid Kubernetes: the golden files of `encryption-gateway-operator render` over
config/samples (kept current by Tests/OperatorTests/Reconcile/RenderTests.swift) and the generated CRD pass the
official schemas of Kubernetes 1.25 and 1.30 strictly (unknown fields are errors)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "Tests" / "OperatorTests" / "Golden").glob("*.yaml"))
CRD = ROOT / "config" / "crd" / "s3gateway.dev_encryptiongateways.yaml"
# Kinds without an official schema (CRDs of other projects): the validator can only warn about them.
NO_OFFICIAL_SCHEMA = ("ServiceMonitor",)


@pytest.mark.parametrize("version", ["1.25.0", "1.30.0"])
@pytest.mark.parametrize("path", GOLDEN + [CRD], ids=lambda p: p.name if isinstance(p, Path) else p)
def test_rendered_objects_pass_strict_validation(path, version):
    out = subprocess.run(["python3", "-m", "kubernetes_validate", "--strict", "-k", version, str(path)],
                         capture_output=True, text=True, timeout=180)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    problems = [line for line in text.splitlines()
                if not line.startswith("INFO") and not any(f"kind {k} " in line for k in NO_OFFICIAL_SCHEMA)]
    assert not problems, "\n".join(problems)
    assert "passed" in text


def test_golden_files_cover_both_samples_and_every_child_kind():
    assert [p.name for p in GOLDEN] == ["full.yaml", "minimal.yaml"]
    kinds = {line.split(":", 1)[1].strip() for line in (ROOT / "Tests/OperatorTests/Golden/full.yaml").read_text().splitlines()
             if line.startswith("kind:")}
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "NetworkPolicy", "Ingress", "ServiceMonitor"}
