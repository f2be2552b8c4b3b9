"""Fixtures for the integration suite: real backends (Ceph RGW, moto) and the real gateway binary.

Environment switches:
  S3GW_TARGET=gateway (default) | backend   `backend` points the clients straight at the backend, to validate the
                                           harness and the tests themselves; tests that need a
                                           gateway (or a backend that checks signatures) are then
                                           deselected at collection, never skipped.
  S3GW_BACKENDS=ceph,moto (default)        which backends to run the suite against.
  GATEWAY_BIN=/path/to/s3-encryption-gateway  default: the release build's bin path.
  S3GW_KEEP_TMP=1                          keep the temp dirs (logs, Ceph state) after the run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import s3gw  # noqa: E402

TARGET = os.environ.get("S3GW_TARGET", "gateway")
if TARGET not in ("gateway", "backend"):
    raise pytest.UsageError(f"S3GW_TARGET must be 'gateway' or 'backend', not {TARGET!r}")
BACKEND_NAMES = [b.strip() for b in os.environ.get("S3GW_BACKENDS", "ceph,moto").split(",") if b.strip()]
for _b in BACKEND_NAMES:
    if _b not in s3gw.BACKENDS:
        raise pytest.UsageError(f"S3GW_BACKENDS: unknown backend {_b!r} (known: {', '.join(s3gw.BACKENDS)})")


def pytest_configure(config):
    config.addinivalue_line("markers", "gateway_only: needs the gateway (deselected with S3GW_TARGET=backend)")
    config.addinivalue_line("markers", "checks_signatures: needs a target that checks signatures (with "
                            "S3GW_TARGET=backend, deselected for a backend that does not)")
    config.addinivalue_line("markers", "per_user_acls: needs a backend with users of its own and their ACLs "
                            "(deselected for a backend without them, in either target)")
    config.addinivalue_line("markers", "sse_c: needs a backend that refuses to read an SSE-C object without its key "
                            "(deselected for a backend that reads it anyway)")
    config.addinivalue_line("markers", "slow: long-running test (e.g. `make run`)")


def pytest_report_header(config):
    return [f"s3gw: target={TARGET} backends={','.join(BACKEND_NAMES)} gateway_bin={s3gw.gateway_bin()}"]


#: Fixtures that start a gateway: a test that uses one (directly or through another fixture) needs a gateway.
GATEWAY_FIXTURES = {"gateway_binary", "enc_gateway", "auth_gw", "auth_gw_tls"}


def _applies_to_backend_target(item) -> bool:
    """Whether a test can run with S3GW_TARGET=backend (clients talk to the backend itself, no gateway)."""
    if "gateway_only" in item.keywords or GATEWAY_FIXTURES & set(item.fixturenames):
        return False
    if "checks_signatures" in item.keywords:
        name = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        return bool(name) and s3gw.BACKENDS[name].CHECKS_SIGNATURES
    return True


def _backend_has_the_feature(item) -> bool:
    """Whether the backend a test runs against has what the test's markers ask of it (a backend class says so
    before it starts)."""
    if "per_user_acls" in item.keywords:
        name = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        return bool(name) and s3gw.BACKENDS[name].PER_USER_ACLS
    if "sse_c" in item.keywords:
        name = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        return bool(name) and s3gw.BACKENDS[name].ENFORCES_SSE_C
    return True


def pytest_collection_modifyitems(config, items):
    # Tests that cannot apply to a backend (one without per-user ACLs) or, in the by-hand mode S3GW_TARGET=backend
    # that checks the harness and the tests against the backend itself, to no gateway, are deselected when
    # collected (pytest prints how many), not skipped while running: a run never skips. make test always runs
    # S3GW_TARGET=gateway.
    def applies(item) -> bool:
        return _backend_has_the_feature(item) and (TARGET != "backend" or _applies_to_backend_target(item))

    deselected = [item for item in items if not applies(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if applies(item)]


@dataclass
class Target:
    """What the clients talk to: the gateway in front of `backend`, or (S3GW_TARGET=backend) the backend itself."""

    endpoint: str
    access_key: str
    secret_key: str
    backend: s3gw.Backend
    gateway: s3gw.Gateway | None

    @property
    def name(self) -> str:
        return self.backend.name

    def client(self, **config):
        return s3gw.make_client(self.endpoint, self.access_key, self.secret_key, **config)

    def cli_env(self) -> dict[str, str]:
        return s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": self.access_key,
                                      "AWS_SECRET_ACCESS_KEY": self.secret_key})


@pytest.fixture(scope="session")
def tmp_root():
    root = s3gw.new_tmpdir("s3gw-it-")
    yield root
    if not os.environ.get("S3GW_KEEP_TMP"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway_binary() -> Path:
    """The gateway binary; a missing binary fails the test (it never skips)."""
    path = s3gw.gateway_bin()
    if not path.exists():
        pytest.fail(f"gateway binary not found at {path}: run `swift build -c release` or set GATEWAY_BIN",
                    pytrace=False)
    return path


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def backend(request, tmp_root) -> s3gw.Backend:
    name = request.param
    b, error = None, None
    try:
        # A fresh directory for every start: pytest stops a session backend when a test asks for the other one
        # and starts it again later, and Ceph does not start again over its own stopped cluster's files.
        b = s3gw.start_backend(name, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root)))
    except s3gw.HarnessError as exc:
        error = str(exc)
    if error:
        pytest.fail(error, pytrace=False)
    yield b
    b.stop()


@pytest.fixture(scope="session")
def target(request, backend, tmp_root) -> Target:
    if TARGET == "backend":
        yield Target(backend.endpoint, backend.access_key, backend.secret_key, backend, None)
        return
    binary = request.getfixturevalue("gateway_binary")
    gw, error = None, None
    try:
        gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key,
                                tmp_root / f"gw-{backend.name}", binary=binary, name=f"gateway-{backend.name}")
    except s3gw.HarnessError as exc:
        error = str(exc)
    if error:
        pytest.fail(error, pytrace=False)
    yield Target(gw.endpoint, gw.access_key, gw.secret_key, backend, gw)
    code = gw.terminate()
    assert code == 0, f"gateway exited with {code} after SIGTERM; log tail:\n{gw.log_tail()}"


@pytest.fixture
def s3(target):
    return target.client()


@pytest.fixture
def bucket(target):
    """A fresh bucket (unique name), emptied and deleted afterwards through the same target."""
    with s3gw.temporary_bucket(target.client(), "it") as name:
        yield name


ENC_PASSWORD = "integration-test-password-0123456789"


@pytest.fixture(scope="session")
def enc_gateway(request, backend, tmp_root):
    """An encrypting gateway (GATEWAY_PASSTHROUGH=false) in front of `backend`, one per session and backend."""
    binary = request.getfixturevalue("gateway_binary")
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key,
                            tmp_root / f"enc-gw-{backend.name}", binary=binary, name=f"enc-gateway-{backend.name}",
                            extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": ENC_PASSWORD})
    yield gw
    code = gw.terminate()
    assert code == 0, f"gateway exited with {code}; log tail:\n{gw.log_tail()}"


@pytest.fixture
def enc(enc_gateway):
    """A boto3 client on the encrypting gateway."""
    return enc_gateway.client()


@pytest.fixture
def raw(backend):
    """A boto3 client straight on the backend: what is really stored."""
    return backend.client()


@pytest.fixture
def ebucket(enc):
    """A fresh bucket with versioning-aware cleanup, created through the encrypting gateway."""
    with s3gw.temporary_bucket(enc, "enc", versions=True) as name:
        yield name


@pytest.fixture(scope="session")
def payloads(tmp_root) -> dict[int, Path]:
    """Random files of the sizes the object tests use, created once per session."""
    out = {}
    for size in (0, 1, 1 << 20, 64 << 20):
        path = tmp_root / f"payload-{size}"
        s3gw.write_random(path, size)
        out[size] = path
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every gateway log the test used."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    t = funcargs.get("target")
    if isinstance(t, Target) and t.gateway is not None:
        report.sections.append((f"gateway log ({t.gateway.log_path})", t.gateway.log_tail(80)))
