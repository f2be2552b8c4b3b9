"""Fixtures for the image tests: each Dockerfile made runnable without a Docker engine (scripts/imagetest.py)
and the real backends the containers talk to. A missing tool or a failed build fails the tests; nothing skips."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import imagetest  # noqa: E402
import s3gw  # noqa: E402
from dockerfile import Dockerfile  # noqa: E402

DOCKERFILES = ["Dockerfile.proxy", "Dockerfile.operator"]


def _prepare(name: str) -> imagetest.Image:
    try:
        return imagetest.Image.prepare(name)
    except imagetest.ImageError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def proxy_image() -> imagetest.Image:
    return _prepare("Dockerfile.proxy")


@pytest.fixture(scope="session")
def operator_image() -> imagetest.Image:
    return _prepare("Dockerfile.operator")


@pytest.fixture(scope="session", params=DOCKERFILES)
def image(request) -> imagetest.Image:
    return request.getfixturevalue("proxy_image" if request.param == "Dockerfile.proxy" else "operator_image")


@pytest.fixture(scope="session", params=DOCKERFILES)
def dockerfile(request) -> Dockerfile:
    return Dockerfile.read(ROOT / request.param)


@pytest.fixture(scope="session")
def tmp_root():
    root = s3gw.new_tmpdir("s3gw-image-")
    root.chmod(0o755)  # the containers run as 65534 and read files bound from here
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def moto(tmp_root):
    try:
        backend = s3gw.MotoBackend.start(tmp_root / "moto")
    except s3gw.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield backend
    backend.stop()


def pytest_sessionfinish(session, exitstatus):
    imagetest.prune()
