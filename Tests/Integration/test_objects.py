"""Object round trips, listings and error pass-through, with boto3 and the aws CLI."""

from __future__ import annotations

import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import sha256
import s3gw

SIZES = [0, 1, 1 << 20, 64 << 20]


def _id(size: int) -> str:
    return {0: "0B", 1: "1B", 1 << 20: "1MiB", 64 << 20: "64MiB"}[size]


@pytest.mark.parametrize("size", SIZES, ids=_id)
def test_boto3_put_get_head_delete(s3, bucket, payloads, size):
    data = payloads[size].read_bytes()
    key = f"boto3/obj-{size}"
    put = s3.put_object(Bucket=bucket, Key=key, Body=data)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert put.get("ETag"), "PUT must return an ETag"

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size

    got = s3.get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    assert len(body) == size
    assert sha256(body) == sha256(data)

    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key=key)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_boto3_multipart_transfer(s3, bucket, payloads, tmp_path):
    """boto3's managed transfer splits 64 MiB into parts (multipart upload, ranged parallel download)."""
    from boto3.s3.transfer import TransferConfig

    cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
    src = payloads[64 << 20]
    s3.upload_file(str(src), bucket, "mpu/big", Config=cfg)
    dst = tmp_path / "big.back"
    s3.download_file(bucket, "mpu/big", str(dst), Config=cfg)
    assert s3gw.sha256_file(dst) == s3gw.sha256_file(src)


def _aws(target, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["aws", "--endpoint-url", target.endpoint, *args]
    out = subprocess.run(cmd, env=target.cli_env(), capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.mark.parametrize("size", SIZES, ids=_id)
def test_awscli_s3_cp_round_trip(target, bucket, payloads, size, tmp_path):
    src = payloads[size]
    _aws(target, "s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/cli/obj-{size}")
    dst = tmp_path / "back"
    _aws(target, "s3", "cp", "--only-show-errors", f"s3://{bucket}/cli/obj-{size}", str(dst))
    assert dst.stat().st_size == size
    assert s3gw.sha256_file(dst) == s3gw.sha256_file(src)


def test_awscli_s3api_put_head_get_delete(target, bucket, payloads, tmp_path):
    src = payloads[1 << 20]
    _aws(target, "s3api", "put-object", "--bucket", bucket, "--key", "api/one", "--body", str(src))
    head = _aws(target, "s3api", "head-object", "--bucket", bucket, "--key", "api/one")
    assert '"ContentLength": 1048576' in head.stdout
    dst = tmp_path / "one"
    _aws(target, "s3api", "get-object", "--bucket", bucket, "--key", "api/one", str(dst))
    assert s3gw.sha256_file(dst) == s3gw.sha256_file(src)
    _aws(target, "s3api", "delete-object", "--bucket", bucket, "--key", "api/one")
    missing = _aws(target, "s3api", "head-object", "--bucket", bucket, "--key", "api/one", check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr


def test_list_objects_v2_prefix_delimiter(s3, bucket):
    keys = ["a/1", "a/2", "a/b/3", "c/4", "top"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    everything = s3.list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in everything["Contents"]) == sorted(keys)
    assert {o["Key"]: o["Size"] for o in everything["Contents"]} == {k: len(k) for k in keys}

    root = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in root.get("Contents", [])] == ["top"]
    assert sorted(p["Prefix"] for p in root["CommonPrefixes"]) == ["a/", "c/"]

    under_a = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert sorted(o["Key"] for o in under_a["Contents"]) == ["a/1", "a/2"]
    assert [p["Prefix"] for p in under_a["CommonPrefixes"]] == ["a/b/"]

    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=2)
    assert page["IsTruncated"] is True and len(page["Contents"]) == 2
    rest = s3.list_objects_v2(Bucket=bucket, ContinuationToken=page["NextContinuationToken"])
    assert len(page["Contents"]) + len(rest["Contents"]) == len(keys)


def test_list_buckets_includes_bucket(s3, bucket):
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names


def test_missing_bucket_is_nosuchbucket(s3):
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="it-missing-bucket-0000", Key="k")
    assert err.value.response["Error"]["Code"] == "NoSuchBucket"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket="it-missing-bucket-0000")
    assert err.value.response["Error"]["Code"] == "NoSuchBucket"


def test_missing_key_is_nosuchkey(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="does/not/exist")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_head_missing_key_is_404(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="does/not/exist")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
