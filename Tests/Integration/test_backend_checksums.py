"""BACKEND_UPLOAD_CHECKSUM: streamed uploads (over 1 MiB) and parts carry a CRC32 trailer the backend verifies.

An object-lock bucket with a default retention refuses an upload that carries neither a Content-MD5 nor a checksum
(AWS does, and so does moto, which these tests use: Ceph RGW Pacific accepts such uploads but not the trailer). A
recording proxy between the gateways and moto shows what the backend was sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest
from botocore.exceptions import ClientError

import s3gw
from conftest import ENC_PASSWORD

pytestmark = pytest.mark.gateway_only

MIB = 1 << 20
TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


@pytest.fixture(scope="module")
def locked(backend, gateway_binary, tmp_root):
    """(proxy, gateway with BACKEND_UPLOAD_CHECKSUM=crc32, gateway with the default, bucket) on moto, the bucket
    object-locked with a one-day GOVERNANCE default retention."""
    proxy = s3gw.RecordingProxy(backend.endpoint)
    url = proxy.start()
    started = []
    try:
        for name, env in (("crc32", {"BACKEND_UPLOAD_CHECKSUM": "crc32"}), ("default", {})):
            started.append(s3gw.start_gateway(
                url, backend.access_key, backend.secret_key, tmp_root / f"checksums-{name}", binary=gateway_binary,
                name=f"checksums-{name}",
                extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": ENC_PASSWORD, **env}))
        raw = backend.client()
        bucket = "locked-" + os.urandom(4).hex()
        raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        raw.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
        # Locked versions cannot be deleted; moto's session ends with the test run.
        yield proxy, started[0], started[1], bucket
    finally:
        for gw in started:
            gw.terminate()
        proxy.stop()


def sent(proxy: s3gw.RecordingProxy, key: str) -> list[s3gw.ForwardedRequest]:
    return [r for r in proxy.take() if r.path.endswith("/" + key)]


def assert_etag_rule(etag: str, data: bytes) -> None:
    """The MD5 of the plaintext, or visibly not an MD5."""
    assert etag == f'"{hashlib.md5(data).hexdigest()}"' or "-" in etag, etag


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_a_streamed_put_into_a_locked_bucket_needs_the_trailer(locked, backend):
    proxy, checked, default, bucket = locked
    # The start-up log says what was decided: auto is off for a local endpoint.
    for gw, decided in ((checked, "crc32"), (default, "off")):
        listening = next(r for r in s3gw.parse_json_log(gw.log_text()) if r.get("msg") == "listening")
        assert listening["backend_upload_checksum"] == decided, listening
    data = os.urandom(3 * MIB + 7)
    proxy.take()
    with pytest.raises(ClientError) as refused:
        default.client().put_object(Bucket=bucket, Key="without", Body=data)
    assert refused.value.response["Error"]["Code"] == "MissingUploadObjectWithObjectLockHeaders"
    [put] = [r for r in sent(proxy, "without") if r.method == "PUT"]
    assert put.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD" and "x-amz-trailer" not in put.headers

    client = checked.client()
    answer = client.put_object(Bucket=bucket, Key="with", Body=data)
    assert_etag_rule(answer["ETag"], data)
    puts = [r for r in sent(proxy, "with") if r.method == "PUT" and "x-amz-copy-source" not in r.headers]
    assert len(puts) == 1
    headers = puts[0].headers
    assert headers["x-amz-content-sha256"] == TRAILER and headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert headers["content-encoding"] == "aws-chunked" and headers["x-amz-sdk-checksum-algorithm"] == "CRC32"
    assert int(headers["x-amz-decoded-content-length"]) < int(headers["content-length"])
    got = client.get_object(Bucket=bucket, Key="with")
    assert got["Body"].read() == data and "ChecksumCRC32" not in got
    # The backend stored the ciphertext without the framing: one 16-byte tag per 64 KiB chunk more than the plaintext.
    chunks = -(-len(data) // 65536)
    assert backend.client().head_object(Bucket=bucket, Key="with")["ContentLength"] == len(data) + 16 * chunks
    assert client.head_object(Bucket=bucket, Key="with")["ContentLength"] == len(data)
    # A small upload is buffered and carries the ciphertext's Content-MD5 with either setting.
    small = os.urandom(1000)
    assert default.client().put_object(Bucket=bucket, Key="small", Body=small)["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_awscli_multipart_upload_with_part_checksums(locked, tmp_path):
    proxy, checked, _, bucket = locked
    src = tmp_path / "src.bin"
    s3gw.write_random(src, 20 * MIB + 3)
    env = s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": checked.access_key, "AWS_SECRET_ACCESS_KEY": checked.secret_key})
    proxy.take()
    for args in (["cp", "--only-show-errors", str(src), f"s3://{bucket}/cli.bin"],
                 ["cp", "--only-show-errors", f"s3://{bucket}/cli.bin", str(tmp_path / "back.bin")]):
        out = subprocess.run(["aws", "--endpoint-url", checked.endpoint, "s3", *args], env=env, capture_output=True,
                             text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr
    assert s3gw.sha256_file(tmp_path / "back.bin") == s3gw.sha256_file(src)
    requests = sent(proxy, "cli.bin")
    [create] = [r for r in requests if r.method == "POST" and r.target.endswith("?uploads")]
    assert create.headers.get("x-amz-checksum-algorithm") == "CRC32"
    parts = [r for r in requests if r.method == "PUT" and "partNumber=" in r.target]
    assert len(parts) == 3 and all(p.headers["x-amz-content-sha256"] == TRAILER for p in parts)
    assert len([r for r in requests if r.method == "POST" and "uploadId=" in r.target]) == 1
    head = json.loads(subprocess.run(["aws", "--endpoint-url", checked.endpoint, "s3api", "head-object", "--bucket", bucket,
                                      "--key", "cli.bin", "--checksum-mode", "ENABLED"], env=env, capture_output=True,
                                     text=True, timeout=60, check=True).stdout)
    assert head["ContentLength"] == 20 * MIB + 3 and re.fullmatch(r'"[0-9a-f]{32}-3"', head["ETag"])
    assert not any(k.startswith("Checksum") for k in head), "the backend's checksums describe ciphertext"
