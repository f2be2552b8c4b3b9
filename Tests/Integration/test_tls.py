"""The HTTPS listener (TLS_CERT_FILE/TLS_KEY_FILE) on the real binary: S3 over https with a test CA, probes over
https, certificate rotation by replacing the files (as cert-manager and Secret volumes do)."""

from __future__ import annotations

import os
import socket
import ssl
import time

import pytest

import s3gw

pytestmark = pytest.mark.gateway_only


@pytest.fixture(scope="module")
def test_ca(tmp_root):
    return s3gw.make_test_ca(tmp_root / "tls-ca")


def _served_serial(port: int, ca_file: str) -> str:
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert()["serialNumber"]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_s3_over_https_encrypting(backend, gateway_binary, test_ca, tmp_path):
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, tmp_path, binary=gateway_binary,
                            tls=test_ca, extra_env={"GATEWAY_PASSTHROUGH": "false"}, name="gateway-tls")
    try:
        assert gw.endpoint.startswith("https://")
        status, _, body = s3gw.http_request("GET", gw.endpoint + "/health", ca_file=gw.ca_file)
        assert (status, body) == (200, b"ok\n")
        assert s3gw.http_request("GET", gw.endpoint + "/ready", ca_file=gw.ca_file)[0] == 200
        # aws-chunked bodies (boto3's https default) are the auth work's; plain signed bodies here.
        s3 = gw.client(request_checksum_calculation="when_required")
        data = os.urandom(3 << 20)
        with s3gw.temporary_bucket(s3, "tls") as bucket:
            s3.put_object(Bucket=bucket, Key="over-tls", Body=data)
            assert s3.get_object(Bucket=bucket, Key="over-tls")["Body"].read() == data
            ranged = s3.get_object(Bucket=bucket, Key="over-tls", Range="bytes=100-199")["Body"].read()
            assert ranged == data[100:200]
        # Plain http on the https port gets no answer, and the gateway goes on serving.
        with pytest.raises(Exception):
            s3gw.http_request("GET", gw.endpoint.replace("https://", "http://") + "/health", timeout=5)
        assert s3gw.http_request("GET", gw.endpoint + "/health", ca_file=gw.ca_file)[0] == 200
    finally:
        assert gw.terminate() == 0, gw.log_tail()


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_certificate_rotation_without_restart(backend, gateway_binary, test_ca, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert_path, key_path = live / "tls.crt", live / "tls.key"

    def install(name: str) -> None:
        cert, key = test_ca.issue(name)
        for src, dst in ((cert, cert_path), (key, key_path)):
            tmp = dst.with_suffix(".tmp")
            tmp.write_bytes(open(src, "rb").read())
            os.replace(tmp, dst)  # atomic, like the symlink swap of a Secret volume

    install("first")
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, tmp_path, binary=gateway_binary,
                            tls=test_ca, name="gateway-rotate",
                            extra_env={"TLS_CERT_FILE": str(cert_path), "TLS_KEY_FILE": str(key_path)})
    try:
        port = int(gw.endpoint.rsplit(":", 1)[1])
        first = _served_serial(port, gw.ca_file)
        install("second")
        deadline = time.monotonic() + 15
        served = first
        while served == first and time.monotonic() < deadline:
            time.sleep(0.1)
            served = _served_serial(port, gw.ca_file)
        assert served != first, "the gateway still serves the old certificate 15 s after the files changed"
        s3 = gw.client()
        s3.list_buckets()
        logs = s3gw.parse_json_log(gw.log_text())
        assert any(e.get("msg") == "TLS certificate reloaded" for e in logs)
        metrics = s3gw.http_request("GET", gw.endpoint + "/metrics", ca_file=gw.ca_file)[2].decode()
        assert 's3_gateway_tls_reloads_total{result="ok"} 1' in metrics
    finally:
        assert gw.terminate() == 0, gw.log_tail()


def test_tls_files_are_checked_at_start_up(gateway_binary, test_ca, tmp_path):
    cert, _ = test_ca.issue("lonely")
    _, other_key = test_ca.issue("other")
    env = s3gw.gateway_env(f"http://127.0.0.1:{s3gw.closed_port()}", "BACKENDKEY", "backendsecret",
                           f"127.0.0.1:{s3gw.free_port()}", "GWKEY", "gwsecret",
                           {"TLS_CERT_FILE": cert, "TLS_KEY_FILE": other_key})
    import subprocess

    out = subprocess.run([str(gateway_binary)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "TLS_CERT_FILE" in out.stderr and "does not match" in out.stderr
    env.pop("TLS_KEY_FILE")
    out = subprocess.run([str(gateway_binary)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "TLS_KEY_FILE" in out.stderr
