"""The gateway's own endpoints (/health, /ready, /metrics), request ids and JSON logs."""

from __future__ import annotations

import json
import re
import time

import pytest
from botocore.exceptions import ClientError

import s3gw

pytestmark = pytest.mark.gateway_only

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+\-]+|NaN|\+Inf|-Inf)(\s+\d+)?$")


def _metrics(endpoint: str) -> dict[str, float]:
    """Sum of every sample per metric name (labels dropped)."""
    status, headers, body = s3gw.http_request("GET", endpoint + "/metrics")
    assert status == 200
    assert headers.get("content-type", "").startswith("text/plain")
    sums: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        assert m, f"not Prometheus text format: {line!r}"
        sums[m.group(1)] = sums.get(m.group(1), 0.0) + float(m.group(3))
    return sums


def test_health_and_ready(target):
    status, headers, body = s3gw.http_request("GET", target.endpoint + "/health")
    assert status == 200
    status, headers, body = s3gw.http_request("GET", target.endpoint + "/ready")
    assert status == 200


def test_metrics_exposes_gateway_metrics_and_counts_requests(target, bucket):
    before = _metrics(target.endpoint)
    text = s3gw.http_request("GET", target.endpoint + "/metrics")[2].decode()
    for name in ("s3_gateway_requests_total", "s3_gateway_active_connections",
                 "s3_gateway_encryption_duration_seconds"):
        assert name in text, f"/metrics lacks {name}"
    s3 = target.client()
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"m{i}", Body=b"x")
        s3.get_object(Bucket=bucket, Key=f"m{i}")["Body"].read()
    expected = before.get("s3_gateway_requests_total", 0) + 6
    # A request is counted once its answer has been written, which can be a moment after the client read it.
    deadline = time.monotonic() + 10
    while (after := _metrics(target.endpoint))["s3_gateway_requests_total"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["s3_gateway_requests_total"] >= expected


def test_bucket_named_health_is_s3(target):
    s3 = target.client()
    try:
        s3.create_bucket(Bucket="health")
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    try:
        s3.put_object(Bucket="health", Key="ready", Body=b"object named ready")
        assert s3.get_object(Bucket="health", Key="ready")["Body"].read() == b"object named ready"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="health")["Contents"]]
        assert keys == ["ready"]
        # Anonymous requests to the same paths still reach the gateway's endpoints.
        assert s3gw.http_request("GET", target.endpoint + "/health")[0] == 200
        assert s3gw.http_request("GET", target.endpoint + "/ready")[0] == 200
    finally:
        s3.delete_object(Bucket="health", Key="ready")
        s3.delete_bucket(Bucket="health")


def test_every_response_has_request_id(target, bucket):
    s3 = target.client()
    responses = [
        s3.put_object(Bucket=bucket, Key="rid", Body=b"x"),
        s3.head_object(Bucket=bucket, Key="rid"),
        s3.get_object(Bucket=bucket, Key="rid"),
        s3.list_objects_v2(Bucket=bucket),
        s3.delete_object(Bucket=bucket, Key="rid"),
    ]
    for r in responses:
        assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id"), r["ResponseMetadata"]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="rid-missing")
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
    for path in ("/health", "/ready", "/metrics"):
        assert s3gw.http_request("GET", target.endpoint + path)[1].get("x-amz-request-id"), path
    status, headers, _ = s3gw.http_request("GET", f"{target.endpoint}/{bucket}")  # unsigned: 403
    assert status == 403 and headers.get("x-amz-request-id")


def test_logs_are_json_lines(target, bucket):
    target.client().put_object(Bucket=bucket, Key="log", Body=b"x")
    text = target.gateway.log_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "gateway wrote no log lines"
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"log line is not JSON: {line!r}")
        assert isinstance(record, dict), line
        for key in ("level", "msg", "time"):
            assert key in record, f"log line lacks {key!r}: {line}"
    assert any(r.get("msg") == "listening" for r in map(json.loads, lines)), "no 'listening' log line"
