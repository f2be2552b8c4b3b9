"""SSE-C on the backend under the gateway's own encryption. A backend refuses every read of an SSE-C object that lacks
its key, so the reads the gateway makes on its own (part headers of multipart objects, a copy's source, the self-copy
recording a streamed upload's ETag, the HEAD before a conditional write) must carry the client's key, as the client's
own GET does.

Ceph RGW enforces the key (ceph-rgw.sh allows SSE-C over plain HTTP); it does not copy SSE-C objects at all
(`501 NotImplemented`, CopyObject and so the self-copy). moto copies them but reads them without the key, so there a
recording proxy between the gateway and moto shows the keys the copies carry.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

import s3gw
from conftest import ENC_PASSWORD

pytestmark = [pytest.mark.gateway_only]

MIB = 1 << 20


def sse(key: bytes, *, source: bool = False) -> dict[str, object]:
    """boto3's arguments for an SSE-C key (it adds the key's MD5 and encodes both)."""
    prefix = "CopySource" if source else ""
    return {f"{prefix}SSECustomerAlgorithm": "AES256", f"{prefix}SSECustomerKey": key}


def sse_headers(key: bytes, prefix: str = "x-amz-server-side-encryption-customer-") -> dict[str, str]:
    return {prefix + "algorithm": "AES256", prefix + "key": base64.b64encode(key).decode(),
            prefix + "key-md5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def status(exc: ClientError) -> int:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def multipart(client, bucket: str, key: str, parts: list[bytes], customer_key: bytes) -> None:
    uid = client.create_multipart_upload(Bucket=bucket, Key=key, **sse(customer_key))["UploadId"]
    tags = [client.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i + 1, Body=body, **sse(customer_key))["ETag"]
            for i, body in enumerate(parts)]
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, **sse(customer_key), MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": tag} for i, tag in enumerate(tags)]})


@pytest.mark.sse_c
def test_multipart_object_under_sse_c_reads_by_range_part_and_attributes(enc_gateway, enc, raw, target, ebucket):
    key = os.urandom(32)
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123_457)]
    data = b"".join(parts)
    multipart(enc, ebucket, "mp", parts, key)
    # The premise: the backend refuses reads without the key (a HEAD included).
    with pytest.raises(ClientError) as refused:
        raw.head_object(Bucket=ebucket, Key="mp")
    assert status(refused.value) == 400

    # A listing carries no key: the size is the aligned-parts formula (exact here: the parts but the last are whole
    # chunks), and the backend's refusal is remembered, so the second listing does not ask again (logged once).
    for _ in range(2):
        [listed] = enc.list_objects_v2(Bucket=ebucket, Prefix="mp")["Contents"]
        assert listed["Size"] == len(data) and "-" in listed["ETag"]
    estimated = [r for r in s3gw.parse_json_log(enc_gateway.log_text())
                 if r.get("msg") == "listing size estimated" and r.get("bucket") == ebucket and r.get("key") == "mp"]
    assert len(estimated) == 1 and "SSE-C" in estimated[0]["reason"], estimated

    # The object's size comes from its part headers, which the gateway reads with the client's key.
    head = enc.head_object(Bucket=ebucket, Key="mp", **sse(key))
    assert head["ContentLength"] == len(data)
    assert enc.get_object(Bucket=ebucket, Key="mp", **sse(key))["Body"].read() == data
    first, last = 5 * MIB - 1000, 5 * MIB + 1000
    got = enc.get_object(Bucket=ebucket, Key="mp", Range=f"bytes={first}-{last}", **sse(key))
    assert got["Body"].read() == data[first:last + 1]
    assert enc.get_object(Bucket=ebucket, Key="mp", PartNumber=2, **sse(key))["Body"].read() == parts[1]
    # botocore encodes the key for GetObject but not for GetObjectAttributes: the headers' own form.
    attributes = enc.get_object_attributes(Bucket=ebucket, Key="mp", ObjectAttributes=["ObjectSize", "ObjectParts"],
                                           SSECustomerAlgorithm="AES256", SSECustomerKey=base64.b64encode(key).decode(),
                                           SSECustomerKeyMD5=base64.b64encode(hashlib.md5(key).digest()).decode())
    assert attributes["ObjectSize"] == len(data) and attributes["ObjectParts"]["TotalPartsCount"] == 3
    # A pass-through gateway refuses the attributes (the ciphertext's) once its HEAD, with the key, saw the metadata.
    with pytest.raises(ClientError) as refused:
        target.client().get_object_attributes(
            Bucket=ebucket, Key="mp", ObjectAttributes=["ObjectSize"], SSECustomerAlgorithm="AES256",
            SSECustomerKey=base64.b64encode(key).decode(), SSECustomerKeyMD5=base64.b64encode(hashlib.md5(key).digest()).decode())
    assert status(refused.value) == 501

    # Without the key, or with another one, the backend's refusal reaches the client; never a 5xx.
    for wrong in ({}, sse(os.urandom(32))):
        with pytest.raises(ClientError) as failed:
            enc.get_object(Bucket=ebucket, Key="mp", Range=f"bytes={first}-{last}", **wrong)
        assert 400 <= status(failed.value) < 500


@pytest.mark.sse_c
def test_upload_part_copy_reads_an_sse_c_source_with_the_copy_source_key(enc, raw, ebucket):
    source_key, target_key = os.urandom(32), os.urandom(32)
    parts = [os.urandom(5 * MIB), os.urandom(2 * MIB + 17)]
    data = b"".join(parts)
    multipart(enc, ebucket, "src", parts, source_key)

    # A range of the source across its part boundary, into a part of another SSE-C upload: the gateway reads the
    # source (HEAD, part headers, the range) with the copy-source key and seals the part under the target's.
    uid = enc.create_multipart_upload(Bucket=ebucket, Key="part-copied", **sse(target_key))["UploadId"]
    first, last = 5 * MIB - 300, 5 * MIB + 299
    copy = dict(Bucket=ebucket, Key="part-copied", UploadId=uid, PartNumber=1, CopySource={"Bucket": ebucket, "Key": "src"},
                CopySourceRange=f"bytes={first}-{last}")
    # Without the source's key the backend refuses the source's reads, and the client hears so.
    with pytest.raises(ClientError) as refused:
        enc.upload_part_copy(**copy, **sse(target_key))
    assert 400 <= status(refused.value) < 500
    tag = enc.upload_part_copy(**copy, **sse(source_key, source=True), **sse(target_key))["CopyPartResult"]["ETag"]
    enc.complete_multipart_upload(Bucket=ebucket, Key="part-copied", UploadId=uid, **sse(target_key),
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": tag}]})
    assert enc.get_object(Bucket=ebucket, Key="part-copied", **sse(target_key))["Body"].read() == data[first:last + 1]
    with pytest.raises(ClientError):
        raw.head_object(Bucket=ebucket, Key="part-copied", **sse(source_key))  # stored under the target's key


@pytest.mark.sse_c
def test_conditional_put_over_an_sse_c_object(enc, ebucket):
    key = os.urandom(32)
    body = os.urandom(3 * MIB)
    enc.put_object(Bucket=ebucket, Key="cond", Body=body, **sse(key))
    etag = enc.head_object(Bucket=ebucket, Key="cond", **sse(key))["ETag"]
    # Ceph RGW refuses the self-copy that would record the streamed upload's MD5 (it copies no SSE-C object), so the
    # ETag stays visibly not an MD5.
    assert etag == f'"{hashlib.md5(body).hexdigest()}"' or "-" in etag, etag

    # The gateway decides If-Match on a HEAD of the current object, which needs the key.
    replacement = os.urandom(1000)
    enc.put_object(Bucket=ebucket, Key="cond", Body=replacement, IfMatch=etag, **sse(key))
    assert enc.get_object(Bucket=ebucket, Key="cond", **sse(key))["Body"].read() == replacement
    with pytest.raises(ClientError) as failed:
        enc.put_object(Bucket=ebucket, Key="cond", Body=b"late", IfMatch=etag, **sse(key))
    assert status(failed.value) == 412


@pytest.fixture(scope="module")
def recorded(backend, gateway_binary, tmp_root):
    """(recording proxy, encrypting gateway in front of it) on the backend."""
    proxy = s3gw.RecordingProxy(backend.endpoint)
    url = proxy.start()
    gw = None
    try:
        gw = s3gw.start_gateway(url, backend.access_key, backend.secret_key, tmp_root / "sse-c-recorded",
                                binary=gateway_binary, name="sse-c-recorded",
                                extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": ENC_PASSWORD})
        yield proxy, gw
    finally:
        if gw:
            gw.terminate()
        proxy.stop()


def carries(request: s3gw.ForwardedRequest, headers: dict[str, str]) -> bool:
    return all(request.headers.get(name) == value for name, value in headers.items())


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_copies_carry_the_sse_c_keys(recorded, backend):
    proxy, gw = recorded
    client = gw.client()
    with s3gw.temporary_bucket(client, "ssec", versions=True) as bucket:
        source_key, target_key = os.urandom(32), os.urandom(32)
        body = os.urandom(3 * MIB)  # streamed (no Content-MD5): the gateway records its MD5 by a self-copy
        proxy.take()
        client.put_object(Bucket=bucket, Key="src", Body=body, **sse(source_key))
        [self_copy] = [r for r in proxy.take() if r.method == "PUT" and "x-amz-copy-source" in r.headers]
        assert carries(self_copy, sse_headers(source_key)), self_copy.headers
        assert carries(self_copy, sse_headers(source_key, "x-amz-copy-source-server-side-encryption-customer-")), self_copy.headers
        assert client.head_object(Bucket=bucket, Key="src", **sse(source_key))["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'

        proxy.take()
        client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                           **sse(source_key, source=True), **sse(target_key))
        seen = proxy.take()
        [head] = [r for r in seen if r.method == "HEAD" and r.path.endswith("/src")]
        assert carries(head, sse_headers(source_key)), head.headers  # the source's key, under the plain names
        [copy] = [r for r in seen if r.method == "PUT" and r.path.endswith("/dst")]
        assert carries(copy, sse_headers(target_key)) and carries(
            copy, sse_headers(source_key, "x-amz-copy-source-server-side-encryption-customer-")), copy.headers
        assert client.get_object(Bucket=bucket, Key="dst", **sse(target_key))["Body"].read() == body

        proxy.take()
        client.put_object(Bucket=bucket, Key="dst", Body=b"new", IfMatch=f'"{hashlib.md5(body).hexdigest()}"', **sse(target_key))
        [head] = [r for r in proxy.take() if r.method == "HEAD" and r.path.endswith("/dst")]
        assert carries(head, sse_headers(target_key)), head.headers
