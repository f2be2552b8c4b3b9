"""Other real S3 clients through the target: s3cmd and rclone (basic put/get/ls)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse

import pytest

import s3gw


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture
def s3cmd(target, tmp_path):
    if not shutil.which("s3cmd"):
        pytest.fail("s3cmd not installed (make test installs it)")
    hostport = urllib.parse.urlsplit(target.endpoint).netloc
    cfg = tmp_path / "s3cmd.cfg"
    cfg.write_text("\n".join([
        "[default]",
        f"access_key = {target.access_key}",
        f"secret_key = {target.secret_key}",
        f"host_base = {hostport}",
        f"host_bucket = {hostport}",  # no %(bucket)s: path-style requests
        "use_https = False",
        "bucket_location = us-east-1",
        "signature_v2 = False",
        "check_ssl_certificate = False",
        "",
    ]))
    env = s3gw.clean_client_env({"HOME": str(tmp_path)})

    def run(*args: str) -> subprocess.CompletedProcess:
        return _run(["s3cmd", "-c", str(cfg), "--no-progress", *args], env)

    return run


@pytest.fixture
def rclone(target, tmp_path):
    if not shutil.which("rclone"):
        pytest.fail("rclone not installed (make test installs it)")
    # Remote "gw" defined entirely in the environment; AWS_CA_BUNDLE is dropped (rclone 1.60 fails on it).
    env = s3gw.clean_client_env({
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_GW_TYPE": "s3",
        "RCLONE_CONFIG_GW_PROVIDER": "Other",
        "RCLONE_CONFIG_GW_ENV_AUTH": "false",
        "RCLONE_CONFIG_GW_ACCESS_KEY_ID": target.access_key,
        "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": target.secret_key,
        "RCLONE_CONFIG_GW_ENDPOINT": target.endpoint,
        "RCLONE_CONFIG_GW_REGION": s3gw.REGION,
        "RCLONE_CONFIG_GW_FORCE_PATH_STYLE": "true",
    })
    env.pop("AWS_CA_BUNDLE", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return _run(["rclone", "--retries", "1", "--low-level-retries", "1", *args], env)

    return run


def test_s3cmd_put_get_ls(s3cmd, bucket, payloads, tmp_path):
    src = payloads[1 << 20]
    s3cmd("put", str(src), f"s3://{bucket}/s3cmd/file.bin")
    s3cmd("put", str(payloads[1]), f"s3://{bucket}/s3cmd/tiny")
    listing = s3cmd("ls", f"s3://{bucket}/s3cmd/").stdout
    assert f"s3://{bucket}/s3cmd/file.bin" in listing
    assert f"s3://{bucket}/s3cmd/tiny" in listing
    dst = tmp_path / "back.bin"
    s3cmd("get", f"s3://{bucket}/s3cmd/file.bin", str(dst))
    assert s3gw.sha256_file(dst) == s3gw.sha256_file(src)
    s3cmd("del", f"s3://{bucket}/s3cmd/file.bin")
    assert f"s3://{bucket}/s3cmd/file.bin" not in s3cmd("ls", f"s3://{bucket}/s3cmd/").stdout


def test_rclone_copy_ls_cat(rclone, bucket, payloads, tmp_path):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    (src_dir / "a.bin").write_bytes(payloads[1 << 20].read_bytes())
    (src_dir / "b.txt").write_bytes(b"hello rclone\n")
    rclone("copy", str(src_dir), f"gw:{bucket}/rc")
    listing = rclone("ls", f"gw:{bucket}/rc").stdout
    sizes = {line.split()[1]: int(line.split()[0]) for line in listing.splitlines() if line.strip()}
    assert sizes == {"a.bin": 1 << 20, "b.txt": 13}
    assert rclone("cat", f"gw:{bucket}/rc/b.txt").stdout == "hello rclone\n"
    dst_dir = tmp_path / "dst"
    rclone("copy", f"gw:{bucket}/rc", str(dst_dir))
    assert s3gw.sha256_file(dst_dir / "a.bin") == s3gw.sha256_file(src_dir / "a.bin")
    # A second copy finds nothing to transfer (sizes and checksums line up through the target).
    again = rclone("copy", "-v", str(src_dir), f"gw:{bucket}/rc")
    assert "Copied" not in again.stderr, again.stderr
