"""Shared helpers for the shipping tests: compose file, CI workflow, lint, monitoring rules, install bundle,
ArgoCD health check and generated docs. Tools missing here fail the tests (scripts/deps.sh installs them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


def tool(name: str) -> str:
    """The path of a required tool; a missing one fails the test (it never skips)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/deps.sh test installs it", pytrace=False)
    return path


def tracked(*patterns: str) -> list[Path]:
    """Files under version control (and new, not ignored ones) matching git pathspecs."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *patterns],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines() if (ROOT / line).exists()]


def operator_bin() -> Path:
    """$OPERATOR_BIN, else the debug build's operator (make test builds it before this phase)."""
    import os
    env = os.environ.get("OPERATOR_BIN")
    if env:
        return Path(env)
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip()) / "encryption-gateway-operator"
    if not path.exists():
        pytest.fail(f"{path} not found: run `swift build` (make test does) or set OPERATOR_BIN", pytrace=False)
    return path
