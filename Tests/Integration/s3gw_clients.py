"""Real S3 command-line clients (s3cmd, rclone) pointed at a gateway or backend, for the integration tests.

Each runner is configured entirely from its arguments (no user config), path-style, plain http, and fails the
test with the client's output when the command fails. A missing client fails the test: CI installs both.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Callable

import pytest

import s3gw

Runner = Callable[..., subprocess.CompletedProcess]


def run_client(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def s3cmd_runner(endpoint: str, access_key: str, secret_key: str, home: Path) -> Runner:
    """`run(*args)` runs s3cmd against `endpoint` with its own config file under `home`."""
    if not shutil.which("s3cmd"):
        pytest.fail("s3cmd not installed (make test installs it)")
    hostport = urllib.parse.urlsplit(endpoint).netloc
    cfg = home / "s3cmd.cfg"
    cfg.write_text("\n".join([
        "[default]",
        f"access_key = {access_key}",
        f"secret_key = {secret_key}",
        f"host_base = {hostport}",
        f"host_bucket = {hostport}",  # no %(bucket)s: path-style requests
        "use_https = False",
        "bucket_location = us-east-1",
        "signature_v2 = False",
        "check_ssl_certificate = False",
        "",
    ]))
    env = s3gw.clean_client_env({"HOME": str(home)})

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_client(["s3cmd", "-c", str(cfg), "--no-progress", *args], env)

    return run


def rclone_runner(endpoint: str, access_key: str, secret_key: str, home: Path) -> Runner:
    """`run(*args)` runs rclone with a remote `gw:` on `endpoint`, defined in the environment."""
    if not shutil.which("rclone"):
        pytest.fail("rclone not installed (make test installs it)")
    # AWS_CA_BUNDLE is dropped (rclone 1.60 fails on it).
    env = s3gw.clean_client_env({
        "RCLONE_CONFIG": str(home / "rclone.conf"),
        "RCLONE_CONFIG_GW_TYPE": "s3",
        "RCLONE_CONFIG_GW_PROVIDER": "Other",
        "RCLONE_CONFIG_GW_ENV_AUTH": "false",
        "RCLONE_CONFIG_GW_ACCESS_KEY_ID": access_key,
        "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": secret_key,
        "RCLONE_CONFIG_GW_ENDPOINT": endpoint,
        "RCLONE_CONFIG_GW_REGION": s3gw.REGION,
        "RCLONE_CONFIG_GW_FORCE_PATH_STYLE": "true",
    })
    env.pop("AWS_CA_BUNDLE", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_client(["rclone", "--retries", "1", "--low-level-retries", "1", *args], env)

    return run
