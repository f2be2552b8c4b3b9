"""The generated configuration reference is current (it comes from the binaries' --help and the CRD, which the
operator generates from its Swift types), and the links between the shipping docs resolve."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import s3gw
from conftest import ROOT, operator_bin

DOCS = ["docs/configuration.md", "docs/install.md", "docs/monitoring.md", "docs/security.md"]


def test_configuration_reference_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/gen_reference.py"), "--check",
                             "--gateway", str(s3gw.gateway_bin()), "--operator", str(operator_bin())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr


def test_reference_lists_every_gateway_setting_and_crd_field():
    text = (ROOT / "docs/configuration.md").read_text()
    swift = (ROOT / "Sources/Shared/Config/GatewayConfiguration.swift").read_text()
    settings = re.findall(r'^\s+case \w+ = "([A-Z][A-Z0-9_]+)"$', swift, re.M)
    assert settings, "no GatewaySetting cases found"
    for name in settings:
        assert f"| `{name}` |" in text, name
    for field in ("backend.endpoint", "encryption.passwordSecretRef", "serviceMonitor.enabled", "observedGeneration"):
        assert f"`{field}" in text, field


def anchors(markdown: str) -> set[str]:
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, re.M)}


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc):
    path = ROOT / doc
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{doc}: broken link {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{doc}: no heading for #{anchor} in {linked.name}"
