"""Fail closed: whatever the method and query, the backend stores ciphertext or nothing, and a client never
receives ciphertext or the gateway's `x-amz-meta-s3eg-*` metadata (issue 7 §1). Real gateway binary on Ceph RGW
and moto; every case checks the backend directly.
"""

from __future__ import annotations

import os
import uuid

import pytest

import s3gw
from conftest import ENC_PASSWORD

pytestmark = [pytest.mark.gateway_only]

PLAIN = b"FAIL-CLOSED-PLAINTEXT-MARKER " + os.urandom(3000) + b" END"


def signed(gw, method: str, bucket: str, key: str | None, query: str = "", *, body: bytes = b"",
           headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One SigV4-signed request with exactly this query string, through `gw`."""
    url = f"{gw.endpoint}/{bucket}" + (f"/{key}" if key else "") + (f"?{query}" if query else "")
    hdrs = dict(headers or {})
    if body or method in ("PUT", "POST"):
        hdrs["content-length"] = str(len(body))
    signed_headers = s3gw.sigv4_headers(method, url, gw.access_key, gw.secret_key, headers=hdrs)
    return s3gw.http_request(method, url, headers=signed_headers, body=body if body or method in ("PUT", "POST") else None)


def stored(raw, bucket: str, key: str) -> tuple[bytes, dict] | None:
    """What the backend holds at `key` (body and user metadata), or None."""
    try:
        got = raw.get_object(Bucket=bucket, Key=key)
    except raw.exceptions.NoSuchKey:
        return None
    except Exception as exc:  # noqa: BLE001 - Ceph answers a plain 404 for some keys
        if "404" in str(exc) or "Not Found" in str(exc):
            return None
        raise
    return got["Body"].read(), got["Metadata"]


def assert_ciphertext(raw, bucket, key, label):
    held = stored(raw, bucket, key)
    assert held is not None, f"{label}: nothing stored, expected ciphertext"
    body, meta = held
    assert meta.get("s3eg-version"), f"{label}: stored without gateway metadata: {meta}"
    assert PLAIN[:40] not in body and body != PLAIN, f"{label}: the backend holds plaintext"


def assert_nothing(raw, bucket, key, label):
    assert stored(raw, bucket, key) is None, f"{label}: the backend stored an object"


def assert_no_gateway_secrets(status, headers, body, ciphertext, label):
    assert not any(name.startswith("x-amz-meta-s3eg-") for name in headers), f"{label}: {headers}"
    assert b"wrapped-key" not in body and b"s3eg-salt" not in body, f"{label}: gateway metadata in the body"
    if ciphertext:
        assert ciphertext[16:64] not in body, f"{label}: ciphertext returned to the client"


# (method, query, extra headers, on object key?, expected): what an upload-shaped request leaves on the backend.
WRITES = [
    ("PUT", "", {}, True, "ciphertext"),
    ("PUT", "foo=bar", {}, True, "ciphertext"),
    ("PUT", "x-id=PutObject", {}, True, "ciphertext"),
    ("PUT", "versionId=3", {}, True, "ciphertext"),
    ("PUT", "X-Amz-Meta-Note=1", {}, True, "ciphertext"),
    ("PUT", "foo", {}, True, "nothing"),
    ("PUT", "uploadId=abc", {}, True, "nothing"),
    ("PUT", "partNumber=1", {}, True, "nothing"),
    ("PUT", "UploadId=abc&partNumber=1", {}, True, "nothing"),
    ("PUT", "uploadid=abc&partnumber=1", {}, True, "nothing"),
    ("PUT", "partNumber=1&uploadId=abc", {}, True, "nothing"),
    ("PUT", "Tagging", {}, True, "nothing"),
    ("PUT", "torrent", {}, True, "nothing"),
    ("PUT", "acl&tagging", {}, True, "nothing"),
    ("PUT", "renameObject", {}, True, "nothing"),
    ("PUT", "uploads", {}, True, "nothing"),
    ("PUT", "", {"x-amz-meta-s3eg-version": "1"}, True, "nothing"),
    ("POST", "", {}, True, "nothing"),
    ("POST", "select&select-type=2", {}, True, "nothing"),
    ("POST", "restore", {}, True, "nothing"),
    ("POST", "", {"content-type": "multipart/form-data; boundary=x"}, False, "nothing"),  # POST Object
]


@pytest.mark.parametrize("method,query,headers,on_key,expected", WRITES,
                         ids=[f"{m} ?{q or '-'}{' +hdr' if h else ''}{'' if k else ' bucket'}" for m, q, h, k, _ in WRITES])
def test_writes_store_ciphertext_or_nothing(enc_gateway, raw, ebucket, method, query, headers, on_key, expected):
    key = f"w-{uuid.uuid4().hex[:8]}"
    status, resp_headers, body = signed(enc_gateway, method, ebucket, key if on_key else None, query,
                                        body=PLAIN, headers=headers)
    label = f"{method} ?{query} -> {status} {body[:200]!r}"
    if expected == "ciphertext":
        assert status == 200, label
        assert_ciphertext(raw, ebucket, key, label)
        # And it reads back through the gateway as the plaintext.
        assert enc_gateway.client().get_object(Bucket=ebucket, Key=key)["Body"].read() == PLAIN
    else:
        assert status >= 400, label
        assert_nothing(raw, ebucket, key, label)
        assert not raw.list_objects_v2(Bucket=ebucket).get("Contents"), label
    assert_no_gateway_secrets(status, resp_headers, body, None, label)


# (method, query, expected): reads of an encrypted object. "plaintext": the object as written; "part": the same, as
# the object's one part (206); "refused": an S3 error from the gateway; "forwarded": a metadata answer from the
# backend (no object bytes either way).
READS = [
    ("GET", "", "plaintext"),
    ("GET", "foo=bar", "plaintext"),
    ("GET", "x-id=GetObject", "plaintext"),
    ("GET", "response-content-type=text/x-test", "plaintext"),
    ("GET", "X-Amz-Foo=1", "plaintext"),
    ("GET", "foo", "refused"),
    ("GET", "torrent", "refused"),
    ("GET", "attributes", "refused"),
    ("GET", "VersionId=1", "refused"),
    ("GET", "versions", "refused"),
    ("GET", "partNumber=1", "part"),
    ("GET", "partNumber=2", "refused"),
    ("GET", "acl&tagging", "refused"),
    ("GET", "select&select-type=2", "refused"),
    ("GET", "uploadId=nope", "refused"),
    ("GET", "tagging", "forwarded"),
    ("GET", "acl", "forwarded"),
    ("HEAD", "", "plaintext"),
    ("HEAD", "foo=bar", "plaintext"),
    ("HEAD", "foo", "refused"),
    ("HEAD", "torrent", "refused"),
    ("HEAD", "partNumber=1", "part"),
    ("HEAD", "acl", "refused"),
]


def test_reads_never_return_ciphertext_or_metadata(enc_gateway, raw, ebucket):
    key = "encrypted-object"
    enc_gateway.client().put_object(Bucket=ebucket, Key=key, Body=PLAIN, Metadata={"color": "blue"})
    ciphertext = raw.get_object(Bucket=ebucket, Key=key)["Body"].read()
    assert ciphertext != PLAIN
    failures = []
    for method, query, expected in READS:
        status, headers, body = signed(enc_gateway, method, ebucket, key, query)
        label = f"{method} ?{query} -> {status} {body[:160]!r}"
        try:
            assert_no_gateway_secrets(status, headers, body, ciphertext, label)
            if expected == "plaintext":
                assert status == 200, label
                assert int(headers["content-length"]) == len(PLAIN), label
                assert headers.get("x-amz-meta-color") == "blue", label
                if method == "GET":
                    assert body == PLAIN, label
            elif expected == "part":
                # A single-part object's one part is the whole object, as S3 reads a part: 206, its Content-Range.
                assert status == 206, label
                assert int(headers["content-length"]) == len(PLAIN), label
                assert headers.get("content-range") == f"bytes 0-{len(PLAIN) - 1}/{len(PLAIN)}", label
                if method == "GET":
                    assert body == PLAIN, label
            elif expected == "refused":
                assert status >= 400, label
            else:
                assert status == 200 and body.lstrip().startswith(b"<"), label
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


def test_pass_through_gateway_refuses_encrypted_objects(target, enc_gateway, raw, ebucket):
    """A gateway in pass-through mode cannot decrypt: it refuses an encrypted object rather than relay ciphertext."""
    enc_gateway.client().put_object(Bucket=ebucket, Key="sealed", Body=PLAIN)
    ciphertext = raw.get_object(Bucket=ebucket, Key="sealed")["Body"].read()
    for method in ("GET", "HEAD"):
        status, headers, body = signed(target.gateway, method, ebucket, "sealed")
        assert status == 501, (method, status, body[:200])
        assert_no_gateway_secrets(status, headers, body, ciphertext, method)
    # GetObjectAttributes too: its document would give the ciphertext's size and ETag.
    status, headers, body = signed(target.gateway, "GET", ebucket, "sealed", "attributes",
                                   headers={"x-amz-object-attributes": "ETag,ObjectSize"})
    assert status == 501, (status, body[:200])
    assert_no_gateway_secrets(status, headers, body, ciphertext, "attributes")


def test_plaintext_reads_can_be_refused(backend, raw, ebucket, enc_gateway, tmp_root, gateway_binary):
    """ENCRYPTION_ALLOW_PLAINTEXT_READS=false: an object planted on the backend without gateway metadata is refused
    (GET, HEAD, CopyObject source); the default gateway serves it (migration)."""
    raw.put_object(Bucket=ebucket, Key="planted", Body=PLAIN)
    strict = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, tmp_root / f"strict-{backend.name}",
                                binary=gateway_binary, name=f"strict-{backend.name}",
                                extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": ENC_PASSWORD,
                                           "ENCRYPTION_ALLOW_PLAINTEXT_READS": "false"})
    try:
        for method in ("GET", "HEAD"):
            status, _, body = signed(strict, method, ebucket, "planted")
            assert status == 403, (method, status, body[:200])
            assert PLAIN[:40] not in body
        status, _, body = signed(strict, "PUT", ebucket, "copy-of-planted", headers={"x-amz-copy-source": f"/{ebucket}/planted"})
        assert status == 403 and b"AccessDenied" in body, body[:300]
        assert_nothing(raw, ebucket, "copy-of-planted", "copy of a plain source")
        strict.client().put_object(Bucket=ebucket, Key="sealed-strict", Body=PLAIN)
        assert strict.client().get_object(Bucket=ebucket, Key="sealed-strict")["Body"].read() == PLAIN
    finally:
        assert strict.terminate() == 0
    assert enc_gateway.client().get_object(Bucket=ebucket, Key="planted")["Body"].read() == PLAIN
