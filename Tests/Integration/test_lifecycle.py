"""Process behaviour: bad configuration, an unreachable backend, graceful shutdown with an upload in flight."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
import urllib.parse
import uuid

import pytest

import s3gw

pytestmark = pytest.mark.gateway_only


def _run_config(binary, env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = s3gw.gateway_env("http://127.0.0.1:9", "BK", "BS", f"127.0.0.1:{s3gw.free_port()}", "GWKEY", "GWSECRET")
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    try:
        return subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=15,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gateway kept running with bad configuration {env_changes}")


@pytest.mark.parametrize("changes, variable", [
    ({"GATEWAY_ACCESS_KEY": None}, "GATEWAY_ACCESS_KEY"),
    ({"BACKEND_ENDPOINT": "not a url"}, "BACKEND_ENDPOINT"),
    ({"BACKEND_ENDPOINT": "ftp://127.0.0.1:21"}, "BACKEND_ENDPOINT"),
], ids=["missing-GATEWAY_ACCESS_KEY", "BACKEND_ENDPOINT-not-a-url", "BACKEND_ENDPOINT-ftp"])
def test_bad_config_exits_2_naming_the_variable(gateway_binary, changes, variable):
    out = _run_config(gateway_binary, changes)
    assert out.returncode == 2, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert variable in out.stdout + out.stderr


@pytest.fixture
def dead_backend_gateway(gateway_binary, tmp_path):
    gw = s3gw.start_gateway(f"http://127.0.0.1:{s3gw.closed_port()}", "BACKENDKEY", "backendsecret", tmp_path,
                            binary=gateway_binary, require_ready=False, name="gateway-dead-backend")
    yield gw
    assert gw.terminate() == 0, gw.log_tail()


def test_backend_down_is_503_service_unavailable(dead_backend_gateway):
    gw = dead_backend_gateway
    assert s3gw.http_request("GET", gw.endpoint + "/health")[0] == 200
    assert s3gw.http_request("GET", gw.endpoint + "/ready")[0] == 503
    for method, path in (("GET", "/"), ("GET", "/some-bucket/key"), ("PUT", "/some-bucket/key")):
        url = gw.endpoint + path
        body = b"data" if method == "PUT" else None
        headers = s3gw.sigv4_headers(method, url, gw.access_key, gw.secret_key,
                                     headers={"content-length": str(len(body))} if body else None)
        status, resp_headers, resp = s3gw.http_request(method, url, headers=headers, body=body, timeout=30)
        assert status == 503, (method, path, status, resp)
        assert b"<Code>ServiceUnavailable</Code>" in resp, resp
        assert resp_headers.get("x-amz-request-id")


def test_sigterm_lets_in_flight_upload_finish(gateway_binary, backend, tmp_path):
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, tmp_path,
                            binary=gateway_binary, name="gateway-sigterm")
    bucket = f"it-term-{uuid.uuid4().hex[:10]}"
    try:
        gw.client().create_bucket(Bucket=bucket)
        size = 4 << 20
        data = os.urandom(size)
        url = f"{gw.endpoint}/{bucket}/slow"
        headers = s3gw.sigv4_headers("PUT", url, gw.access_key, gw.secret_key,
                                     headers={"content-length": str(size)})
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        conn.putrequest("PUT", parts.path, skip_host=False, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        step = 256 << 10
        conn.send(data[:step])
        time.sleep(1.0)  # the request is now in flight at the gateway
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert gw.proc.poll() is None, "gateway exited with an upload in flight"
        for off in range(step, size, step):
            conn.send(data[off:off + step])
            time.sleep(0.05)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 200, body
        assert gw.proc.wait(40) == 0, gw.log_tail()
        # The object is complete on the backend (pass-through or not, it exists and is non-empty).
        head = backend.client().head_object(Bucket=bucket, Key="slow")
        assert head["ContentLength"] >= size
    finally:
        if gw.proc.poll() is None:
            gw.terminate()
        try:
            b = backend.client()
            for obj in b.list_objects_v2(Bucket=bucket).get("Contents", []):
                b.delete_object(Bucket=bucket, Key=obj["Key"])
            b.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001
            pass
