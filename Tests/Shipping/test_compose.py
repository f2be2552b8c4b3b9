"""docker-compose.yml: valid against the Compose specification's schema (what `docker compose config` checks,
without a Docker engine), consistent with Dockerfile.proxy, and its documented development setup works: the
gateway binary started with the compose file's environment serves a PUT/GET with the documented credentials."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

import s3gw
from conftest import ROOT, tool
from dockerfile import Dockerfile

COMPOSE = ROOT / "docker-compose.yml"


def check_schema(path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_spec_schema():
    result = check_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_misspelt_key(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("    ports:\n", "    portz:\n", 1))
    assert check_schema(bad).returncode != 0


def test_gateway_service_runs_the_proxy_image_as_the_dockerfile_says(compose):
    gateway = compose["services"]["gateway"]
    assert gateway["build"]["dockerfile"] == "Dockerfile.proxy" and (ROOT / gateway["build"]["context"]).is_dir()
    df = Dockerfile.read(ROOT / "Dockerfile.proxy")
    uid, gid = df.user()
    assert gateway["user"] == f"{uid}:{gid}"
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
    published = {int(p.split(":")[-1]) for p in gateway["ports"]}
    assert published == set(df.exposed_ports())
    backend = gateway["environment"]["BACKEND_ENDPOINT"]
    host, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", backend).groups()
    assert host in compose["services"] and f"{port}:{port}" in compose["services"][host]["ports"]
    assert compose["services"]["gateway"]["depends_on"][host]["condition"] == "service_healthy"


def test_every_gateway_variable_is_a_setting_of_the_binary(compose):
    help_text = subprocess.run([str(s3gw.gateway_bin()), "--help"], capture_output=True, text=True, timeout=30).stdout
    known = set(re.findall(r"\(([A-Z][A-Z0-9_]+)\)", help_text))
    assert "BACKEND_ENDPOINT" in known, help_text
    unknown = set(compose["services"]["gateway"]["environment"]) - known
    assert not unknown, f"docker-compose.yml sets variables the gateway does not read: {sorted(unknown)}"


def test_documented_dev_credentials_are_the_ones_configured(compose):
    header = COMPOSE.read_text().split("name:", 1)[0]
    env = compose["services"]["gateway"]["environment"]
    minio = compose["services"]["minio"]["environment"]
    assert f"AWS_ACCESS_KEY_ID={env['GATEWAY_ACCESS_KEY']}" in header
    assert f"AWS_SECRET_ACCESS_KEY={env['GATEWAY_SECRET_KEY']}" in header
    assert env["BACKEND_ACCESS_KEY"] == minio["MINIO_ROOT_USER"] and env["BACKEND_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert f"{minio['MINIO_ROOT_USER']} / {minio['MINIO_ROOT_PASSWORD']}" in header
    assert env["ENCRYPTION_PASSWORD"] in header


def test_gateway_starts_with_the_compose_environment_and_round_trips(compose, tmp_path):
    """The compose file's gateway settings, with the backend swapped for moto and a free loopback port."""
    env = {k: str(v) for k, v in compose["services"]["gateway"]["environment"].items()}
    backend = s3gw.MotoBackend.start(tmp_path / "moto")
    try:
        # start_gateway picks the loopback port; the harness's own pass-through default is not the compose file's.
        extra = {k: v for k, v in env.items() if k != "LISTEN_ADDR"}
        extra.update(BACKEND_ENDPOINT=backend.endpoint, GATEWAY_PASSTHROUGH="false")
        gw = s3gw.start_gateway(backend.endpoint, env["BACKEND_ACCESS_KEY"], env["BACKEND_SECRET_KEY"],
                                tmp_path / "gw", extra_env=extra)
        try:
            client = s3gw.make_client(gw.endpoint, env["GATEWAY_ACCESS_KEY"], env["GATEWAY_SECRET_KEY"])
            with s3gw.temporary_bucket(client, "compose") as bucket:
                client.put_object(Bucket=bucket, Key="readme", Body=b"hello from compose")
                assert client.get_object(Bucket=bucket, Key="readme")["Body"].read() == b"hello from compose"
                assert b"hello from compose" not in backend.client().get_object(Bucket=bucket, Key="readme")["Body"].read()
        finally:
            assert gw.terminate() == 0
    finally:
        backend.stop()
