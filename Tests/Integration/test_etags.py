"""ETags and listings clients can trust, through the encrypting gateway (issue 7 §3), with the clients that decide
by them: s3cmd compares the PUT ETag with the file's MD5 and `s3cmd sync` decides by listing MD5s; `rclone check`
compares listing ETags (or, for ETags that are not MD5s, HEAD's) with local MD5s and `rclone sync` decides by size
and modification time. Real gateway binary on Ceph RGW and moto; sizes below the clients' multipart thresholds
(s3cmd 15 MiB, rclone 200 MiB).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import zlib
from pathlib import Path

import pytest

import s3gw
import s3gw_clients

pytestmark = [pytest.mark.gateway_only]

# Single-part sizes around the interesting boundaries: empty, one chunk, the 1 MiB buffering limit (above it the
# gateway streams and records the plaintext MD5 after the upload), and 7 MiB (issue 7's s3cmd case).
TREE_SIZES = {"empty": 0, "one": 1, "chunk": 65536, "chunk+1": 65537, "buffered": 1 << 20, "streamed": (1 << 20) + 1,
              "sub/three": 3 << 20, "sub/seven": 7 << 20}


@pytest.fixture(scope="session")
def client_tree(tmp_root) -> Path:
    """A local folder of files of `TREE_SIZES` (deterministic content), shared by the client tests."""
    root = tmp_root / "client-tree"
    rng = random.Random(77)
    for name, size in TREE_SIZES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def local_md5s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def enc_s3cmd(enc_gateway, tmp_path):
    return s3gw_clients.s3cmd_runner(enc_gateway.endpoint, enc_gateway.access_key, enc_gateway.secret_key, tmp_path)


@pytest.fixture
def enc_rclone(enc_gateway, tmp_path):
    return s3gw_clients.rclone_runner(enc_gateway.endpoint, enc_gateway.access_key, enc_gateway.secret_key, tmp_path)


def test_s3cmd_put_7mib_sees_its_md5(enc_s3cmd, enc, raw, ebucket, client_tree, tmp_path):
    src = client_tree / "sub/seven"
    out = enc_s3cmd("put", str(src), f"s3://{ebucket}/seven.bin")
    text = out.stdout + out.stderr
    assert "MD5 Sums don't match" not in text and "WARNING" not in text, text
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    head = enc.head_object(Bucket=ebucket, Key="seven.bin")
    assert head["ETag"] == f'"{md5}"'
    assert head["ContentLength"] == src.stat().st_size
    # The backend's own ETag is the MD5 of the ciphertext; the listing shows it visibly not as an MD5.
    backend_etag = raw.head_object(Bucket=ebucket, Key="seven.bin")["ETag"]
    listed = enc.list_objects_v2(Bucket=ebucket)["Contents"][0]
    assert listed["Size"] == src.stat().st_size
    assert listed["ETag"] == backend_etag[:-1] + '-1"'
    back = tmp_path / "back.bin"
    got = enc_s3cmd("get", f"s3://{ebucket}/seven.bin", str(back))
    assert "MD5 signatures do not match" not in got.stdout + got.stderr
    assert back.read_bytes() == src.read_bytes()


def test_s3cmd_sync_twice_uploads_nothing_the_second_time(enc_s3cmd, enc, ebucket, client_tree):
    first = enc_s3cmd("sync", f"{client_tree}/", f"s3://{ebucket}/tree/")
    assert first.stdout.count("upload:") == len(TREE_SIZES), first.stdout
    assert "WARNING" not in first.stdout + first.stderr, first.stdout + first.stderr
    second = enc_s3cmd("sync", f"{client_tree}/", f"s3://{ebucket}/tree/")
    assert "upload:" not in second.stdout, second.stdout
    listed = {o["Key"][len("tree/"):]: o["Size"] for o in enc.list_objects_v2(Bucket=ebucket, Prefix="tree/")["Contents"]}
    assert listed == TREE_SIZES


def test_rclone_copy_check_and_sync(enc_rclone, enc, ebucket, client_tree, tmp_path):
    enc_rclone("copy", str(client_tree), f"gw:{ebucket}/rc")
    check = enc_rclone("check", str(client_tree), f"gw:{ebucket}/rc")
    report = check.stdout + check.stderr
    assert "0 differences found" in report, report
    assert "could not be checked" not in report, report  # every hash was compared, none skipped
    assert f"{len(TREE_SIZES)} matching files" in report, report
    # Listing sizes are the local sizes.
    listed = {line.split(maxsplit=1)[1]: int(line.split()[0])
              for line in enc_rclone("ls", f"gw:{ebucket}/rc").stdout.splitlines() if line.strip()}
    assert listed == TREE_SIZES
    # A second sync finds nothing to transfer; after a local change, exactly that file.
    again = enc_rclone("sync", "-v", str(client_tree), f"gw:{ebucket}/rc")
    assert "Copied" not in again.stderr, again.stderr
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in TREE_SIZES:
        (changed / name).parent.mkdir(parents=True, exist_ok=True)
        (changed / name).write_bytes((client_tree / name).read_bytes())
    (changed / "one").write_bytes(b"2")
    third = enc_rclone("sync", "-v", str(changed), f"gw:{ebucket}/rc")
    assert third.stderr.count("Copied") == 1 and "one: Copied" in third.stderr, third.stderr
    assert enc_rclone("check", str(changed), f"gw:{ebucket}/rc").returncode == 0
    # What the listing and HEAD say agrees with the local files' MD5s.
    md5s = local_md5s(changed)
    for key, md5 in md5s.items():
        assert enc.head_object(Bucket=ebucket, Key=f"rc/{key}")["ETag"] == f'"{md5}"', key


def test_copy_object_etags_and_self_copy(enc, raw, ebucket):
    data = os.urandom((2 << 20) + 5)
    md5 = hashlib.md5(data).hexdigest()
    enc.put_object(Bucket=ebucket, Key="src", Body=data)
    copied = enc.copy_object(Bucket=ebucket, Key="dst", CopySource={"Bucket": ebucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{md5}"'
    assert enc.head_object(Bucket=ebucket, Key="dst")["ETag"] == f'"{md5}"'
    # S3 refuses a copy onto itself that changes nothing; with REPLACE it is how clients change metadata.
    with pytest.raises(enc.exceptions.ClientError) as err:
        enc.copy_object(Bucket=ebucket, Key="src", CopySource={"Bucket": ebucket, "Key": "src"})
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    enc.copy_object(Bucket=ebucket, Key="src", CopySource={"Bucket": ebucket, "Key": "src"}, MetadataDirective="REPLACE",
                    Metadata={"mtime": "1"})
    head = enc.head_object(Bucket=ebucket, Key="src")
    assert head["Metadata"] == {"mtime": "1"} and head["ETag"] == f'"{md5}"'
    assert enc.get_object(Bucket=ebucket, Key="src")["Body"].read() == data
    # The source's conditions take the ETags a client was shown: HEAD's and the listing's.
    listed = enc.list_objects_v2(Bucket=ebucket, Prefix="src")["Contents"][0]["ETag"]
    for tag in (f'"{md5}"', listed):
        enc.copy_object(Bucket=ebucket, Key="dst2", CopySource={"Bucket": ebucket, "Key": "src"}, CopySourceIfMatch=tag)
    with pytest.raises(enc.exceptions.ClientError) as err:
        enc.copy_object(Bucket=ebucket, Key="dst3", CopySource={"Bucket": ebucket, "Key": "src"},
                        CopySourceIfMatch=raw.head_object(Bucket=ebucket, Key="src")["ETag"])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_conditional_writes_and_one_request_id(enc_gateway, enc, ebucket):
    enc.put_object(Bucket=ebucket, Key="cw", Body=b"v1")
    md5 = hashlib.md5(b"v1").hexdigest()
    enc.put_object(Bucket=ebucket, Key="cw", Body=b"v2", IfMatch=f'"{md5}"')
    with pytest.raises(enc.exceptions.ClientError) as err:
        enc.put_object(Bucket=ebucket, Key="cw", Body=b"v3", IfMatch=f'"{md5}"')
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(enc.exceptions.ClientError) as err:
        enc.put_object(Bucket=ebucket, Key="cw", Body=b"v3", IfNoneMatch="*")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert enc.get_object(Bucket=ebucket, Key="cw")["Body"].read() == b"v2"
    # Errors from the gateway and from the backend carry one request id, in the header and the body.
    for method, key in (("GET", "missing-key"), ("PUT", "cw?foo")):
        url = f"{enc_gateway.endpoint}/{ebucket}/{key}"
        headers = s3gw.sigv4_headers(method, url, enc_gateway.access_key, enc_gateway.secret_key,
                                     headers={"content-length": "0"} if method == "PUT" else None)
        status, resp_headers, body = s3gw.http_request(method, url, headers=headers, body=b"" if method == "PUT" else None)
        assert status >= 400
        assert f"<RequestId>{resp_headers['x-amz-request-id']}</RequestId>".encode() in body, (resp_headers, body)


def test_flexible_checksums_are_recorded_and_returned(enc_gateway, enc, raw, ebucket):
    """boto3 sends `x-amz-checksum-crc32` (a header over http); the gateway verifies it, records it in the object's
    authenticated metadata and returns it on PUT and on whole-object reads in checksum mode, where boto3 checks it
    against the bytes it received. A checksum sent in the aws-chunked trailer of a streamed body is recorded in the
    same self-copy as the ETag."""
    for size in (1000, (2 << 20) + 3):
        data = os.urandom(size)
        expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        key = f"crc-{size}"
        put = enc.put_object(Bucket=ebucket, Key=key, Body=data, ChecksumAlgorithm="CRC32")
        assert put["ChecksumCRC32"] == expected
        assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert raw.head_object(Bucket=ebucket, Key=key)["Metadata"]["s3eg-checksum"] == f"CRC32:{expected}"
        got = enc.get_object(Bucket=ebucket, Key=key, ChecksumMode="ENABLED")
        assert got["ChecksumCRC32"] == expected
        assert got["Body"].read() == data  # boto3 validates the body against the returned checksum
        assert enc.head_object(Bucket=ebucket, Key=key, ChecksumMode="ENABLED")["ChecksumCRC32"] == expected
        # GetObjectAttributes reports the plaintext's size, MD5 and checksum (the backend's describe ciphertext).
        attributes = enc.get_object_attributes(Bucket=ebucket, Key=key,
                                               ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass", "ObjectParts"])
        assert attributes["ObjectSize"] == size and attributes["ETag"] == hashlib.md5(data).hexdigest()
        assert attributes["Checksum"]["ChecksumCRC32"] == expected and attributes["StorageClass"] == "STANDARD"
        assert "ObjectParts" not in attributes
        ranged = enc.get_object(Bucket=ebucket, Key=key, ChecksumMode="ENABLED", Range="bytes=0-99")
        assert "ChecksumCRC32" not in ranged and ranged["Body"].read() == data[:100]
        # A copy keeps the record; it never shows a checksum the backend computed over ciphertext.
        copied = enc.copy_object(Bucket=ebucket, Key=key + "-copy", CopySource={"Bucket": ebucket, "Key": key},
                                 ChecksumAlgorithm="CRC32")
        assert copied["CopyObjectResult"].get("ChecksumCRC32") in (None, expected)
        assert enc.head_object(Bucket=ebucket, Key=key + "-copy", ChecksumMode="ENABLED")["ChecksumCRC32"] == expected

    data = os.urandom((3 << 20) + 1)
    expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    url = f"{enc_gateway.endpoint}/{ebucket}/crc-trailer"
    headers, body = s3gw.aws_chunked_put(url, enc_gateway.access_key, enc_gateway.secret_key, data,
                                         mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer=("x-amz-checksum-crc32", expected))
    status, answer, text = s3gw.http_request("PUT", url, headers=headers, body=body, timeout=60)
    assert status == 200, text
    assert answer["x-amz-checksum-crc32"] == expected
    assert answer["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    stored = raw.head_object(Bucket=ebucket, Key="crc-trailer")["Metadata"]
    assert stored["s3eg-checksum"] == f"CRC32:{expected}" and stored["s3eg-etag"] == hashlib.md5(data).hexdigest()
    assert enc.get_object(Bucket=ebucket, Key="crc-trailer", ChecksumMode="ENABLED")["ChecksumCRC32"] == expected


def test_all_three_listings_show_plaintext_sizes_and_non_md5_etags(enc, raw, ebucket):
    """ListObjects, ListObjectsV2 and ListObjectVersions: plaintext sizes, and ETags that do not pass for MD5s (the
    backend's with `-1`), while HEAD gives the plaintext MD5."""
    sizes = {"ls/small": 10, "ls/buffered": 1 << 20, "ls/streamed": (2 << 20) + 9}
    md5s = {}
    for key, size in sizes.items():
        data = os.urandom(size)
        md5s[key] = hashlib.md5(data).hexdigest()
        enc.put_object(Bucket=ebucket, Key=key, Body=data)
    backend = {o["Key"]: o["ETag"] for o in raw.list_objects_v2(Bucket=ebucket, Prefix="ls/")["Contents"]}
    expected = {key: (backend[key][:-1] + '-1"', size) for key, size in sizes.items()}
    listings = {
        "v1": enc.list_objects(Bucket=ebucket, Prefix="ls/")["Contents"],
        "v2": enc.list_objects_v2(Bucket=ebucket, Prefix="ls/")["Contents"],
        "versions": enc.list_object_versions(Bucket=ebucket, Prefix="ls/")["Versions"],
    }
    for name, entries in listings.items():
        assert {e["Key"]: (e["ETag"], e["Size"]) for e in entries} == expected, name
    for key, md5 in md5s.items():
        assert enc.head_object(Bucket=ebucket, Key=key)["ETag"] == f'"{md5}"'
        assert backend[key] != f'"{md5}"'  # the backend's is the MD5 of the ciphertext


def test_s3cmd_put_20mib_multipart_and_sync_twice(enc_s3cmd, enc, ebucket, tmp_path):
    """s3cmd uploads 20 MiB as a multipart upload (15 MiB parts): no MD5 warning (each part's ETag is the MD5 of the
    part's plaintext), the object lists with its local size, reads back, and a second `s3cmd sync` uploads nothing."""
    src_dir = tmp_path / "big"
    src_dir.mkdir()
    src = src_dir / "twenty.bin"
    src.write_bytes(random.Random(20).randbytes(20 << 20))
    out = enc_s3cmd("put", str(src), f"s3://{ebucket}/twenty.bin")
    text = out.stdout + out.stderr
    assert "WARNING" not in text and "MD5 Sums don't match" not in text, text
    head = enc.head_object(Bucket=ebucket, Key="twenty.bin")
    assert head["ContentLength"] == 20 << 20 and head["ETag"].endswith('-2"'), head
    assert enc.list_objects_v2(Bucket=ebucket, Prefix="twenty.bin")["Contents"][0]["Size"] == 20 << 20
    back = tmp_path / "back.bin"
    got = enc_s3cmd("get", f"s3://{ebucket}/twenty.bin", str(back))
    assert "WARNING" not in got.stdout + got.stderr, got.stdout + got.stderr
    assert s3gw.sha256_file(back) == s3gw.sha256_file(src)
    first = enc_s3cmd("sync", f"{src_dir}/", f"s3://{ebucket}/big/")
    assert first.stdout.count("upload:") >= 1 and "WARNING" not in first.stdout + first.stderr, first.stdout + first.stderr
    second = enc_s3cmd("sync", f"{src_dir}/", f"s3://{ebucket}/big/")
    assert "upload:" not in second.stdout, second.stdout
    assert enc.list_objects_v2(Bucket=ebucket, Prefix="big/")["Contents"][0]["Size"] == 20 << 20
