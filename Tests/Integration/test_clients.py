"""Other real S3 clients through the target: s3cmd and rclone (basic put/get/ls)."""

from __future__ import annotations

import pytest

import s3gw
import s3gw_clients


@pytest.fixture
def s3cmd(target, tmp_path):
    return s3gw_clients.s3cmd_runner(target.endpoint, target.access_key, target.secret_key, tmp_path)


@pytest.fixture
def rclone(target, tmp_path):
    return s3gw_clients.rclone_runner(target.endpoint, target.access_key, target.secret_key, tmp_path)


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
