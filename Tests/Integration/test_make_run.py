"""`make run DEMO_ONLY=1` works end to end: deps, release build, moto + gateway, demo, clean stop."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

import s3gw

pytestmark = [pytest.mark.gateway_only, pytest.mark.slow]


def test_make_run_demo_only(gateway_binary):
    env = dict(os.environ, GATEWAY_BIN=str(gateway_binary))
    out = subprocess.run(["make", "--no-print-directory", "run", "DEMO_ONLY=1"], cwd=s3gw.REPO, env=env,
                         capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Gateway ready at http://127.0.0.1:" in text
    assert "identical to the uploaded file: True" in text
    assert "run: gateway stopped (exit code 0)" in text
    assert "aws --endpoint-url http://127.0.0.1:" in text
    # The operator's half: what it would deploy for the minimal sample, and how to see it on a real API server.
    assert "The operator's half" in text and re.search(r"^  Deployment +minimal$", text, re.M), text
    assert "make run-operator" in text
