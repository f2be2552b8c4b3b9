"""Authentication at the gateway: the client's signature is checked against the gateway's own credentials,
and the gateway re-signs for the backend with different credentials."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import s3gw


# With S3GW_TARGET=backend these run only against a backend that checks signatures (conftest deselects the rest).
pytestmark = [pytest.mark.checks_signatures]


def _error(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_wrong_secret_is_signature_does_not_match(target, bucket):
    bad = s3gw.make_client(target.endpoint, target.access_key, target.secret_key + "x")
    assert _error(lambda: bad.list_objects_v2(Bucket=bucket)) == ("SignatureDoesNotMatch", 403)
    assert _error(lambda: bad.put_object(Bucket=bucket, Key="k", Body=b"data")) == ("SignatureDoesNotMatch", 403)


def test_unknown_access_key_is_invalid_access_key_id(target, bucket):
    bad = s3gw.make_client(target.endpoint, "AKIDUNKNOWN000000000", target.secret_key)
    assert _error(lambda: bad.list_objects_v2(Bucket=bucket)) == ("InvalidAccessKeyId", 403)


def test_unsigned_request_is_access_denied(target, bucket):
    status, headers, body = s3gw.http_request("GET", f"{target.endpoint}/{bucket}?list-type=2")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body
    status, _, body = s3gw.http_request("PUT", f"{target.endpoint}/{bucket}/anon", body=b"hello")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body


def test_hand_signed_request_is_accepted(target, bucket):
    """Our own SigV4 signer (used by the SIGTERM test and the benchmark) produces signatures the target accepts."""
    url = f"{target.endpoint}/{bucket}/signed"
    headers = s3gw.sigv4_headers("PUT", url, target.access_key, target.secret_key,
                                 headers={"content-length": "5"})
    status, _, body = s3gw.http_request("PUT", url, headers=headers, body=b"hello")
    assert status == 200, body
    headers = s3gw.sigv4_headers("GET", url, target.access_key, target.secret_key)
    status, _, body = s3gw.http_request("GET", url, headers=headers)
    assert (status, body) == (200, b"hello")


@pytest.mark.gateway_only
def test_client_credentials_are_not_the_backends(target, bucket):
    backend = target.backend
    assert (target.access_key, target.secret_key) != (backend.access_key, backend.secret_key)
    # The gateway's credentials work through the gateway ...
    target.client().put_object(Bucket=bucket, Key="via-gateway", Body=b"x")
    # ... and the object landed on the backend, reachable with the backend's own keys.
    assert backend.client().head_object(Bucket=bucket, Key="via-gateway")["ContentLength"] >= 1
    if backend.checks_signatures:
        # Forwarding the client's signature would fail: the backend does not know the gateway's keys.
        direct = backend.client(target.access_key, target.secret_key)
        code, status = _error(lambda: direct.list_objects_v2(Bucket=bucket))
        assert status == 403 and code == "InvalidAccessKeyId"
