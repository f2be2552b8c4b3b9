"""The gateway behind an outgoing HTTP proxy, as the operator's `spec.proxy` sets it up (`http_proxy`, `no_proxy`):
a real proxy (Squid, with a user and password) between an encrypting gateway and Ceph RGW or moto. The proxy's
own log shows which requests went through it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

import s3gw

pytestmark = [pytest.mark.gateway_only]

PASSWORD = "outgoing-proxy-test-password-0123456789"
PROXY_USER, PROXY_PASSWORD = "gwproxy", "proxy-secret-7f3a9c"


class Squid:
    """Squid in the foreground on a free loopback port, asking for a user and password (basic auth), caching nothing.
    Its own temporary directory: run as root, Squid works as the `proxy` user, which must reach its files."""

    def __init__(self):
        binary = shutil.which("squid") or ("/usr/sbin/squid" if os.path.exists("/usr/sbin/squid") else None)
        if binary is None:
            pytest.fail("squid not found: scripts/deps.sh test installs it", pytrace=False)
        self.workdir = Path(tempfile.mkdtemp(prefix="s3gw-squid-"))
        os.chmod(self.workdir, 0o777)
        self.port = s3gw.free_port()
        self.access_log = self.workdir / "access.log"
        self.cache_log = self.workdir / "cache.log"
        hashed = subprocess.run(["openssl", "passwd", "-apr1", PROXY_PASSWORD], check=True, capture_output=True,
                                text=True).stdout.strip()
        passwd = self.workdir / "passwd"
        passwd.write_text(f"{PROXY_USER}:{hashed}\n")
        passwd.chmod(0o644)
        config = self.workdir / "squid.conf"
        config.write_text("\n".join([
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {self.workdir}/squid.pid",
            f"access_log stdio:{self.access_log}",
            f"cache_log {self.cache_log}",
            "cache_store_log none",
            "cache deny all",
            "cache_mem 8 MB",
            f"coredump_dir {self.workdir}",
            "pinger_enable off",
            f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {passwd}",
            "auth_param basic children 2",
            "acl authed proxy_auth REQUIRED",
            "http_access allow localhost authed",
            "http_access deny all",
            "shutdown_lifetime 1 seconds",
        ]) + "\n")
        self.proc = subprocess.Popen([binary, "-N", "-f", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "squid.stderr", "wb"), start_new_session=True)
        deadline = time.monotonic() + 30
        while not self._accepting():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self._read(self.cache_log)
                self.stop()
                pytest.fail(f"squid did not start:\n{log}", pytrace=False)
            time.sleep(0.05)

    def _accepting(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    @staticmethod
    def _read(path) -> str:
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def url(self, credentials: bool = True) -> str:
        user = f"{PROXY_USER}:{PROXY_PASSWORD}@" if credentials else ""
        return f"http://{user}127.0.0.1:{self.port}"

    def requests_to(self, endpoint: str) -> list[str]:
        """The access log's lines for requests to `endpoint` (its scheme, host and port): one per request, written
        when the request is done."""
        return [line for line in self._read(self.access_log).splitlines() if f" {endpoint}/" in line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def proxy():
    p = Squid()
    yield p
    p.stop()


def _gateway(binary, backend, workdir, name, env, require_ready=True):
    return s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, workdir, binary=binary,
                              name=name, require_ready=require_ready,
                              extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": PASSWORD, **env})


def _listening(gw) -> dict:
    return next(r for r in map(json.loads, filter(str.strip, gw.log_text().splitlines())) if r.get("msg") == "listening")


def test_backend_requests_go_through_the_proxy(request, backend, tmp_root, proxy):
    """Every backend request of a write, a read, a ranged read, a listing and a delete goes through the proxy, with
    its credentials; the objects are stored encrypted and read back whole. The log names the proxy without them."""
    binary = request.getfixturevalue("gateway_binary")
    gw = _gateway(binary, backend, tmp_root / f"proxied-gw-{backend.name}", f"proxied-gateway-{backend.name}",
                  {"http_proxy": proxy.url(), "https_proxy": proxy.url(), "no_proxy": ""})
    try:
        before = len(proxy.requests_to(backend.endpoint))
        s3 = gw.client()
        body = bytes(range(256)) * 4096  # 1 MiB: several chunks
        with s3gw.temporary_bucket(s3, "proxied") as bucket:
            s3.put_object(Bucket=bucket, Key="k", Body=body)
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
            assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=70000-70009")["Body"].read() == body[70000:70010]
            assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
            stored = backend.client().get_object(Bucket=bucket, Key="k")["Body"].read()
            assert len(stored) > len(body) and body[:4096] not in stored
            s3.delete_object(Bucket=bucket, Key="k")
        # bucket create, put, the reads, list, deletes: each reached the backend through the proxy, which logs a
        # request once it is done (maybe just after its answer reached the gateway)
        deadline = time.monotonic() + 15
        while len(through := proxy.requests_to(backend.endpoint)[before:]) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(through) >= 7, "\n".join(through)
        assert any(" PUT " in line and "/k " in line and f" {PROXY_USER} " in line for line in through), through
        listening = _listening(gw)
        assert listening["backend_proxy"] == proxy.url(credentials=False)
        assert PROXY_PASSWORD not in gw.log_text() + gw.stderr_text()
    finally:
        code = gw.terminate()
    assert code == 0, gw.log_tail()


def test_no_proxy_sends_backend_requests_directly(request, backend, tmp_root):
    """A backend host that no_proxy names is reached directly. The proxy named refuses every connection, so a
    request sent through it would fail. The list's * among other entries matches nothing, and the log says so."""
    binary = request.getfixturevalue("gateway_binary")
    host = urllib.parse.urlsplit(backend.endpoint).hostname
    gw = _gateway(binary, backend, tmp_root / f"bypass-gw-{backend.name}", f"bypass-gateway-{backend.name}",
                  {"http_proxy": f"http://127.0.0.1:{s3gw.free_port()}", "no_proxy": f"*, example.com, {host}"})
    try:
        s3 = gw.client()
        with s3gw.temporary_bucket(s3, "direct") as bucket:
            s3.put_object(Bucket=bucket, Key="k", Body=b"direct")
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"direct"
        assert _listening(gw)["backend_proxy"] == "none"
        assert "lists * among other entries" in gw.log_text()
    finally:
        code = gw.terminate()
    assert code == 0, gw.log_tail()


def test_a_proxy_refusing_the_credentials_is_a_clear_error(request, backend, tmp_root, proxy):
    """Without the proxy's password it answers 407 to every backend request. That is not the backend's answer: the
    client gets S3's ServiceUnavailable (never the proxy's page), /ready says the backend is unreachable, the log
    names the cause, and nothing is stored."""
    binary = request.getfixturevalue("gateway_binary")
    gw = _gateway(binary, backend, tmp_root / f"noauth-gw-{backend.name}", f"noauth-gateway-{backend.name}",
                  {"http_proxy": proxy.url(credentials=False), "no_proxy": ""}, require_ready=False)
    try:
        with s3gw.temporary_bucket(backend.client(), "noauth") as bucket:
            url = f"{gw.endpoint}/{bucket}/k"
            headers = s3gw.sigv4_headers("PUT", url, gw.access_key, gw.secret_key, headers={"content-length": "2"})
            status, _, body = s3gw.http_request("PUT", url, headers=headers, body=b"hi")
            assert status == 503, (status, body)
            assert b"<Code>ServiceUnavailable</Code>" in body and b"html" not in body.lower(), body
            assert "Contents" not in backend.client().list_objects_v2(Bucket=bucket)
        assert s3gw.http_request("GET", gw.endpoint + "/ready")[0] == 503
        assert "407 Proxy Authentication Required" in gw.log_text()
    finally:
        code = gw.terminate()
    assert code == 0, gw.log_tail()
