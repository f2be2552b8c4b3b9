"""config/argocd: the Lua health check for EncryptionGateway, run by a real Lua interpreter (Debian's lua5.4) on
sample statuses; the argocd-cm patch carries the same Lua; the example Applications point at directories of this
repository that render."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from conftest import ROOT, tool

ARGOCD = ROOT / "config/argocd"
HEALTH = ARGOCD / "encryptiongateway-health.lua"


def lua_literal(value) -> str:
    """A Python value (decoded JSON/YAML) as a Lua table constructor; None becomes nil (absent), as ArgoCD does."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid Lua string literal for this ASCII data
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}" for k, v in value.items() if v is not None) + "}"


def health(obj: dict) -> tuple[str, str]:
    """Runs the health check the way ArgoCD does: the script as a chunk with the resource in the global `obj`."""
    driver = (f"obj = {lua_literal(obj)}\n"
              f"local check = assert(load({json.dumps(HEALTH.read_text())}))\n"
              "local hs = check()\n"
              "io.write(hs.status, '\\t', hs.message or '')\n")
    result = subprocess.run([tool("lua5.4"), "-"], input=driver, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.partition("\t")
    return status, message


def resource(generation=2, status=None) -> dict:
    obj = {"apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
           "metadata": {"name": "gw", "namespace": "shop", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


def condition(type_, status, reason, message="", generation=2) -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-28T06:00:00Z", "observedGeneration": generation}


READY = condition("Ready", "True", "Available", "3/3 replicas available")
NOT_DEGRADED = condition("Degraded", "False", "AsExpected")
ROLLED_OUT = condition("Progressing", "False", "RolloutComplete")

CASES = [
    ("no status yet", resource(status=None), "Progressing", "report a status"),
    ("older generation observed", resource(status={"observedGeneration": 1, "conditions": [READY, NOT_DEGRADED]}),
     "Progressing", "generation 2"),
    ("healthy", resource(status={"observedGeneration": 2, "readyReplicas": 3,
                                 "conditions": [READY, ROLLED_OUT, NOT_DEGRADED]}), "Healthy", "3/3 replicas"),
    ("rolling out", resource(status={"observedGeneration": 2, "conditions": [
        condition("Ready", "False", "Progressing", "1/3 replicas available"),
        condition("Progressing", "True", "RollingOut", "updating pods"), NOT_DEGRADED]}),
     "Progressing", "RollingOut: updating pods"),
    ("secret missing", resource(status={"observedGeneration": 2, "conditions": [
        condition("Ready", "False", "SecretNotFound", "secret shop/creds not found"),
        condition("Degraded", "True", "SecretNotFound", "secret shop/creds not found"), ROLLED_OUT]}),
     "Degraded", "SecretNotFound: secret shop/creds not found"),
    ("degraded wins over ready", resource(status={"observedGeneration": 2, "conditions": [
        READY, condition("Degraded", "True", "ApplyFailed", "")]}), "Degraded", "ApplyFailed"),
    ("scaled to zero", resource(status={"observedGeneration": 2, "conditions": [
        condition("Ready", "False", "ScaledToZero", "spec.replicas is 0"), NOT_DEGRADED]}),
     "Suspended", "ScaledToZero"),
    ("no available replicas", resource(status={"observedGeneration": 2, "conditions": [
        condition("Ready", "False", "NoAvailableReplicas", "0/3 replicas available"), ROLLED_OUT, NOT_DEGRADED]}),
     "Progressing", "NoAvailableReplicas: 0/3"),
    ("conditions of an older generation are ignored", resource(status={"observedGeneration": 2, "conditions": [
        condition("Ready", "True", "Available", "stale", generation=1)]}), "Progressing", "Ready condition"),
    ("status without conditions", resource(status={"observedGeneration": 2}), "Progressing", "Ready condition"),
    ("resource without generation", {"metadata": {"name": "gw"}, "status": {"conditions": [READY]}},
     "Healthy", "3/3"),
]


@pytest.mark.parametrize("name,obj,expected,message", CASES, ids=[c[0] for c in CASES])
def test_health_check(name, obj, expected, message):
    status, text = health(obj)
    assert status == expected, f"{name}: {status} ({text})"
    assert message in text


def test_health_check_uses_only_lua_5_1_constructs():
    """ArgoCD runs gopher-lua (Lua 5.1): no integer division, bit operators, goto or utf8 library."""
    code = "\n".join(line.split("--")[0] for line in HEALTH.read_text().splitlines())
    for construct in ("//", "goto ", "::", "utf8.", " & ", " | ", "<<", ">>"):
        assert construct not in code, construct


def test_argocd_cm_patch_carries_the_same_lua():
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    assert patch["data"]["resource.customizations.health.s3gateway.dev_EncryptionGateway"] == HEALTH.read_text()
    crd = yaml.safe_load((ROOT / "config/crd/s3gateway.dev_encryptiongateways.yaml").read_text())
    assert crd["spec"]["group"] == "s3gateway.dev" and crd["spec"]["names"]["kind"] == "EncryptionGateway"


def test_applications_install_the_operator_before_the_gateways():
    apps = [d for d in yaml.safe_load_all((ARGOCD / "application.yaml").read_text()) if d]
    assert [a["kind"] for a in apps] == ["Application", "Application"]
    operator, gateways = apps
    waves = [int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for a in apps]
    assert waves[0] < waves[1], "the CRD must exist before EncryptionGateways are applied"
    # The operator's Application syncs this repository's config/default, which must render.
    assert operator["spec"]["source"]["path"] == "config/default"
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "config/default")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    namespace = next(d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "Namespace")["metadata"]["name"]
    assert operator["spec"]["destination"]["namespace"] == namespace
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    assert "SkipDryRunOnMissingResource=true" in gateways["spec"]["syncPolicy"]["syncOptions"]
    rendered = subprocess.run(["kubectl", "kustomize", str(ARGOCD)], capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
