"""Backend round trips of encrypted reads (issue 12, FORMAT.md §7): a GET of an encrypted object costs the backend
one GET whose answer carries the metadata, ranged reads ask for the covering ciphertext at once (redone only for a
non-default chunk size), conditional reads are answered from that answer's head, and a HEAD is one HEAD; and a small
upload is one PUT that the backend checks against its ciphertext's MD5. A recording proxy between the gateway and the
real backend (Ceph RGW and moto) counts what the backend sees."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError

import s3gw
from conftest import ENC_PASSWORD

pytestmark = pytest.mark.gateway_only

C = 65536          # the default chunk size
SEALED = C + 16


def take(proxy: s3gw.RecordingProxy, key: str) -> list[tuple[str, str | None]]:
    """(method, Range) of the requests for objects whose path ends in `key` since the last call."""
    return [(r.method, r.headers.get("range")) for r in proxy.take() if r.path.endswith("/" + key)]


@pytest.fixture(scope="module")
def counted(backend, gateway_binary, tmp_root):
    """(proxy, default gateway, gateway writing 16 KiB chunks), both encrypting through the counting proxy."""
    proxy = s3gw.RecordingProxy(backend.endpoint)
    url = proxy.start()
    started = []
    try:
        for name, env in (("rt-default", {}), ("rt-small-chunks", {"ENCRYPTION_CHUNK_SIZE": "16384"})):
            started.append(s3gw.start_gateway(
                url, backend.access_key, backend.secret_key, tmp_root / f"{name}-{backend.name}", binary=gateway_binary,
                name=f"{name}-{backend.name}",
                extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": ENC_PASSWORD, **env}))
        yield proxy, started[0], started[1]
    finally:
        for gw in started:
            gw.terminate()
        proxy.stop()


@pytest.fixture
def rt_bucket(counted):
    _, gw, _ = counted
    with s3gw.temporary_bucket(gw.client(), "rt") as name:
        yield name


def _content(n: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


def test_a_get_is_one_backend_get(counted, rt_bucket):
    proxy, gw, _ = counted
    s3 = gw.client()
    data = _content(3 * C + 100)
    s3.put_object(Bucket=rt_bucket, Key="obj", Body=data)
    take(proxy, "obj")
    assert s3.get_object(Bucket=rt_bucket, Key="obj")["Body"].read() == data
    assert take(proxy, "obj") == [("GET", None)]
    # A range asks for exactly the covering chunks of the default layout, in the same single request.
    got = s3.get_object(Bucket=rt_bucket, Key="obj", Range=f"bytes={C + 10}-{C + 20}")
    assert got["Body"].read() == data[C + 10:C + 21]
    assert got["ContentRange"] == f"bytes {C + 10}-{C + 20}/{len(data)}"
    assert take(proxy, "obj") == [("GET", f"bytes={SEALED}-{2 * SEALED - 1}")]
    got = s3.get_object(Bucket=rt_bucket, Key="obj", Range=f"bytes={2 * C}-")
    assert got["Body"].read() == data[2 * C:]
    assert take(proxy, "obj") == [("GET", f"bytes={2 * SEALED}-")]
    # Past the end: answered 416 from the same answer.
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=rt_bucket, Key="obj", Range=f"bytes={3 * C + 100}-")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert take(proxy, "obj") == [("GET", f"bytes={3 * SEALED}-")]
    # A HEAD is one HEAD; a suffix range needs the size first.
    assert s3.head_object(Bucket=rt_bucket, Key="obj")["ContentLength"] == len(data)
    assert take(proxy, "obj") == [("HEAD", None)]
    assert s3.get_object(Bucket=rt_bucket, Key="obj", Range="bytes=-5")["Body"].read() == data[-5:]
    assert [m for m, _ in take(proxy, "obj")] == ["HEAD", "GET"]


def test_conditional_reads_are_decided_on_the_same_answer(counted, rt_bucket):
    proxy, gw, _ = counted
    s3 = gw.client()
    data = _content(1000)
    etag = s3.put_object(Bucket=rt_bucket, Key="cond", Body=data)["ETag"]
    take(proxy, "cond")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=rt_bucket, Key="cond", IfNoneMatch=etag)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=rt_bucket, Key="cond", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=rt_bucket, Key="cond", IfMatch=etag)["Body"].read() == data
    assert take(proxy, "cond") == [("GET", None)] * 3


def test_another_chunk_size_is_read_again_with_the_right_range(counted, rt_bucket):
    proxy, gw, small = counted
    data = _content(5 * 16384 + 3)
    small.client().put_object(Bucket=rt_bucket, Key="small", Body=data)
    take(proxy, "small")
    s3 = gw.client()
    assert s3.get_object(Bucket=rt_bucket, Key="small")["Body"].read() == data
    assert take(proxy, "small") == [("GET", None)]  # a whole read does not depend on the chunk size
    got = s3.get_object(Bucket=rt_bucket, Key="small", Range="bytes=40000-40009")
    assert got["Body"].read() == data[40000:40010]
    s = 16384 + 16
    assert take(proxy, "small") == [("GET", "bytes=0-65551"), ("GET", f"bytes={2 * s}-{3 * s - 1}")]


def test_a_large_unneeded_body_is_cut_off_and_the_read_redone(counted, rt_bucket):
    proxy, gw, small = counted
    data = _content(40 * 16384)
    small.client().put_object(Bucket=rt_bucket, Key="large", Body=data)
    take(proxy, "large")
    got = gw.client().get_object(Bucket=rt_bucket, Key="large", Range=f"bytes={5 * 16384}-")
    assert got["Body"].read() == data[5 * 16384:]
    s = 16384 + 16
    assert take(proxy, "large") == [("GET", "bytes=65552-"), ("GET", f"bytes={5 * s}-{40 * s - 1}")]


def test_a_small_upload_is_one_put_checked_against_its_ciphertext_md5(counted, rt_bucket, backend):
    """A body of up to 1 MiB (sealed in memory) reaches the backend as one PUT that carries the MD5 of the ciphertext
    the backend stores, as a signed Content-MD5 the backend checks (object-lock buckets require one), and no second
    digest of the same bytes (UNSIGNED-PAYLOAD)."""
    proxy, gw, _ = counted
    client, raw = gw.client(), backend.client()
    for n in (0, 5000, 1 << 20):
        key = f"small-put-{n}"
        take(proxy, key)
        client.put_object(Bucket=rt_bucket, Key=key, Body=_content(n))
        puts = [r for r in proxy.take() if r.path.endswith("/" + key) and r.method == "PUT"]
        assert len(puts) == 1, puts
        stored = raw.get_object(Bucket=rt_bucket, Key=key)["Body"].read()
        assert len(stored) == n + 16 * max(1, -(-n // C)), len(stored)
        assert puts[0].headers.get("content-md5") == base64.b64encode(hashlib.md5(stored).digest()).decode()
        assert "content-md5" in puts[0].headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        assert puts[0].headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"
        assert client.get_object(Bucket=rt_bucket, Key=key)["Body"].read() == _content(n)
