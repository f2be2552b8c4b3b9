"""Process harness shared by `make run`, the integration tests and the benchmarks.

Starts real backends (Ceph RGW through scripts/ceph-rgw.sh, moto's server) and the gateway binary on free
loopback ports, waits for them to answer, and stops exactly what it started. Standard library only, except
`Backend.client()` which imports boto3 lazily.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
REGION = "us-east-1"


class HarnessError(RuntimeError):
    """A process of the harness did not start or stop as expected; the message says what to look at."""


@contextlib.contextmanager
def temporary_bucket(client, prefix: str, *, versions: bool = False):
    """Creates a uniquely named bucket through `client`; afterwards deletes its objects (every version and
    delete marker when `versions`) and the bucket. Cleanup errors never hide the test's own result."""
    import uuid
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        try:
            if versions:
                for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                        client.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
            else:
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                    for obj in page.get("Contents", []):
                        client.delete_object(Bucket=name, Key=obj["Key"])
            client.delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A loopback port with nothing listening (bound then released; nothing else on this host grabs it quickly)."""
    return free_port()


def release_bin_dir() -> Path:
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def gateway_bin() -> Path:
    """The gateway binary: $GATEWAY_BIN, else the release build's path (it may not exist yet)."""
    env = os.environ.get("GATEWAY_BIN")
    if env:
        return Path(env)
    default = REPO / ".build" / "release" / "s3-encryption-gateway"
    if default.exists():
        return default
    try:
        return release_bin_dir() / "s3-encryption-gateway"
    except (OSError, subprocess.CalledProcessError):
        return default


def clean_client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for S3 CLI clients: no user profile or config file, no AWS_CA_BUNDLE (rclone 1.60 fails on it)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("RCLONE_")}
    env["AWS_CONFIG_FILE"] = "/nonexistent/aws-config"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/aws-credentials"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_DEFAULT_REGION"] = REGION
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------------------------------
# Minimal SigV4 signer (header auth) for raw requests: streaming uploads, benchmarks, crafted auth failures.


def sigv4_headers(method: str, url: str, access_key: str, secret_key: str, *,
                  region: str = REGION, payload_hash: str = "UNSIGNED-PAYLOAD",
                  headers: dict[str, str] | None = None, now: datetime.datetime | None = None) -> dict[str, str]:
    """Headers (including Authorization) for a SigV4-signed S3 request; every given header is signed."""
    parts = urllib.parse.urlsplit(url)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    hdrs = {k.lower(): str(v).strip() for k, v in (headers or {}).items()}
    hdrs["host"] = parts.netloc
    hdrs["x-amz-date"] = amz_date
    hdrs["x-amz-content-sha256"] = payload_hash
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(query))
    path = urllib.parse.quote(urllib.parse.unquote(parts.path or "/"), safe="/-_.~")
    signed = sorted(hdrs)
    canonical = "\n".join([method, path, canonical_query,
                           "".join(f"{k}:{hdrs[k]}\n" for k in signed), ";".join(signed), payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in hdrs.items() if k != "host"}
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return out


def _signing_key(secret_key: str, day: str, region: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def presign_v4(method: str, url: str, access_key: str, secret_key: str, *, expires: int = 300,
               region: str = REGION, now: datetime.datetime | None = None) -> str:
    """A SigV4 presigned URL (query-string authentication, `host` the only signed header)."""
    parts = urllib.parse.urlsplit(url)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")]
    enc = lambda v: urllib.parse.quote(v, safe="-_.~")  # noqa: E731
    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query))
    path = urllib.parse.quote(urllib.parse.unquote(parts.path or "/"), safe="/-_.~")
    canonical = "\n".join([method, path, canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(_signing_key(secret_key, amz_date[:8], region), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{parts.scheme}://{parts.netloc}{path}?{canonical_query}&X-Amz-Signature={signature}"


def presign_v2(method: str, url: str, access_key: str, secret_key: str, *, expires_at: int,
               content_type: str = "") -> str:
    """A SigV2 presigned URL (`AWSAccessKeyId`, `Expires`, `Signature`), path-style."""
    import base64
    parts = urllib.parse.urlsplit(url)
    to_sign = f"{method}\n\n{content_type}\n{expires_at}\n{parts.path}"
    signature = base64.b64encode(hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    query = urllib.parse.urlencode({"AWSAccessKeyId": access_key, "Expires": str(expires_at), "Signature": signature})
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


_CRC32C_TABLE: list[int] = []


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), table-driven; Python's standard library has only CRC32."""
    if not _CRC32C_TABLE:
        for b in range(256):
            c = b
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC32C_TABLE.append(c)
    c = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def aws_chunked_put(url: str, access_key: str, secret_key: str, payload: bytes, *, mode: str,
                    chunk_size: int = 64 << 10, trailer: tuple[str, str] | None = None, region: str = REGION,
                    extra_headers: dict[str, str] | None = None, mangle=None) -> tuple[dict[str, str], bytes]:
    """Headers and body of an aws-chunked PUT in one of the three modes, signed as the SDKs sign it.

    `trailer` is (header name, value), e.g. ("x-amz-checksum-crc32", base64). `mangle(chunks)` may edit the list
    of framed pieces (bytes) before they are joined, to build tampered bodies."""
    signed = mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload))}
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    headers.update(extra_headers or {})
    now = datetime.datetime.now(datetime.timezone.utc)
    signed_headers = sigv4_headers("PUT", url, access_key, secret_key, region=region, payload_hash=mode,
                                   headers=headers, now=now)
    seed = signed_headers["authorization"].rsplit("Signature=", 1)[1]
    amz_date = signed_headers["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    key = _signing_key(secret_key, amz_date[:8], region)
    empty = hashlib.sha256(b"").hexdigest()
    previous = seed
    pieces: list[bytes] = []
    offsets = list(range(0, len(payload), chunk_size)) + [len(payload)]
    for start in offsets:
        data = payload[start:start + chunk_size] if start < len(payload) else b""
        head = f"{len(data):x}"
        if signed:
            to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, empty, hashlib.sha256(data).hexdigest()])
            previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            head += f";chunk-signature={previous}"
        pieces.append(head.encode() + b"\r\n" + data + (b"\r\n" if data else b""))
    tail = b""
    if trailer:
        tail += f"{trailer[0]}:{trailer[1]}\r\n".encode()
        if signed:
            to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                                 hashlib.sha256(f"{trailer[0]}:{trailer[1]}\n".encode()).hexdigest()])
            tail += f"x-amz-trailer-signature:{hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()}\r\n".encode()
    pieces.append(tail + b"\r\n")
    if mangle:
        pieces = mangle(pieces)
    return signed_headers, b"".join(pieces)


def http_request(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
                 timeout: float = 10, ca_file: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP(S) request; returns (status, lower-cased headers, body). https verifies against `ca_file`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl.create_default_context(cafile=ca_file))
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------------------
# A recording proxy between the gateway and its backend


@dataclass(frozen=True)
class ForwardedRequest:
    """One request a `RecordingProxy` forwarded."""

    method: str
    target: str                 # path and query, as sent
    headers: dict[str, str]     # lower-cased names

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path


class RecordingProxy:
    """Forwards every request to `target` unchanged (Host included, so signatures hold) and records it: what the
    backend sees of the gateway's requests, for tests and benchmarks. `start()` returns the proxy's endpoint."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.endpoint = ""
        self._seen: list[ForwardedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        proxy = self
        target = urllib.parse.urlsplit(self.target)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                with proxy._lock:
                    proxy._seen.append(ForwardedRequest(self.command, self.path,
                                                        {k.lower(): v for k, v in headers.items()}))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response_only(answer.status, answer.reason)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                # A HEAD answer has no body but keeps the object's length.
                length = answer.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the gateway cut off a body it did not need

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay  # noqa: N815 - http.server's naming

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.endpoint

    def seen(self) -> list[ForwardedRequest]:
        """Every request forwarded since the start or the last `take()`."""
        with self._lock:
            return list(self._seen)

    def take(self) -> list[ForwardedRequest]:
        """The requests forwarded since the last call (or the start); forgets them."""
        with self._lock:
            out, self._seen = self._seen, []
        return out

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --------------------------------------------------------------------------------------------------------------
# Backends


@dataclass
class Backend:
    """A running S3 server the gateway talks to."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    checks_signatures: bool
    workdir: Path
    _proc: subprocess.Popen | None = None

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        return make_client(self.endpoint, access_key or self.access_key, secret_key or self.secret_key)

    def stop(self) -> None:
        raise NotImplementedError


def make_client(endpoint: str, access_key: str, secret_key: str, *, verify: str | None = None, **config):
    """A boto3 S3 client; `verify` is the CA bundle for an https endpoint (a test CA)."""
    import boto3
    from botocore.config import Config

    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"},
                 connect_timeout=5, read_timeout=120, **config)
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, config=cfg, **({"verify": verify} if verify else {}))


def wait_s3_ready(endpoint: str, access_key: str, secret_key: str, timeout: float,
                  proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"process exited with code {proc.returncode} before {endpoint} answered")
        try:
            make_client(endpoint, access_key, secret_key).list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
            time.sleep(0.2)
    raise HarnessError(f"{endpoint} did not answer ListBuckets within {timeout:.0f}s: {last}")


class MotoBackend(Backend):
    #: moto accepts any signature (known before a server starts: the suite selects tests by it).
    CHECKS_SIGNATURES: ClassVar[bool] = False
    #: moto has one user: no second backend user whose own ACLs a test could check.
    PER_USER_ACLS: ClassVar[bool] = False
    #: moto stores SSE-C objects but reads them without the key (or with any key): nothing a test could check.
    ENFORCES_SSE_C: ClassVar[bool] = False

    @classmethod
    def start(cls, workdir: Path) -> "MotoBackend":
        workdir.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("moto_server")
        if not exe:
            raise HarnessError("moto_server not found: pip install 'moto[server]' (make test installs it)")
        port = free_port()
        log = open(workdir / "moto.log", "wb")
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        backend = cls(name="moto", endpoint=f"http://127.0.0.1:{port}", access_key="MOTOBACKENDKEY",
                      secret_key="moto-backend-secret-" + secrets.token_hex(8), checks_signatures=cls.CHECKS_SIGNATURES,
                      workdir=workdir, _proc=proc)
        try:
            wait_s3_ready(backend.endpoint, backend.access_key, backend.secret_key, 60, proc)
        except Exception:
            backend.stop()
            raise HarnessError(f"moto did not start; log:\n{(workdir / 'moto.log').read_text(errors='replace')}")
        return backend

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class CephBackend(Backend):
    CHECKS_SIGNATURES: ClassVar[bool] = True
    PER_USER_ACLS: ClassVar[bool] = True
    #: Reads of an SSE-C object need its key (ceph-rgw.sh allows SSE-C over plain HTTP, `rgw crypt require ssl`).
    ENFORCES_SSE_C: ClassVar[bool] = True

    @classmethod
    def start(cls, workdir: Path) -> "CephBackend":
        # One retry in a fresh directory: a CI run should not fail on a single slow or racy start.
        for attempt in (1, 2):
            run_dir = workdir if attempt == 1 else Path(tempfile.mkdtemp(prefix=workdir.name + "-retry-",
                                                                          dir=workdir.parent))
            run_dir.mkdir(parents=True, exist_ok=True)
            try:
                out = subprocess.run([str(SCRIPTS / "ceph-rgw.sh"), "start", str(run_dir)], capture_output=True,
                                     text=True, stdin=subprocess.DEVNULL, timeout=180)
            except subprocess.TimeoutExpired as exc:
                subprocess.run([str(SCRIPTS / "ceph-rgw.sh"), "stop", str(run_dir)], check=False, timeout=60)
                out = subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or "", f"timed out: {exc}")
            if out.returncode == 0:
                workdir = run_dir
                break
            print(f"ceph-rgw start attempt {attempt} failed:\n{out.stderr}", file=sys.stderr)
        else:
            raise HarnessError(f"Ceph RGW did not start (exit {out.returncode}):\n{out.stderr}{out.stdout}")
        values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        return cls(name="ceph", endpoint=values["RGW_ENDPOINT"], access_key=values["RGW_ACCESS_KEY"],
                   secret_key=values["RGW_SECRET_KEY"], checks_signatures=cls.CHECKS_SIGNATURES, workdir=workdir)

    def stop(self) -> None:
        subprocess.run([str(SCRIPTS / "ceph-rgw.sh"), "stop", str(self.workdir)], check=False,
                       stdin=subprocess.DEVNULL, timeout=60)


BACKENDS = {"ceph": CephBackend, "moto": MotoBackend}


def start_backend(name: str, workdir: Path) -> Backend:
    return BACKENDS[name].start(workdir)


# --------------------------------------------------------------------------------------------------------------
# Gateway


@dataclass
class TestCA:
    """A throw-away certificate authority made with the `openssl` command (TLS listener tests)."""

    __test__ = False  # not a pytest test class

    directory: Path
    ca_file: str

    def issue(self, name: str = "server", common_name: str = "localhost") -> tuple[str, str]:
        """A server certificate for localhost and 127.0.0.1 signed by this CA: (certificate file, key file)."""
        d = self.directory
        ext = d / f"{name}.ext"
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", d / f"{name}.key",
                 "-out", d / f"{name}.csr", "-subj", f"/CN={common_name}")
        _openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", self.ca_file, "-CAkey", d / "ca.key",
                 "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-out", d / f"{name}.pem", "-extfile", ext)
        return str(d / f"{name}.pem"), str(d / f"{name}.key")


def _openssl(*args) -> None:
    out = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise HarnessError(f"openssl {' '.join(map(str, args))} failed: {out.stderr}")


def make_test_ca(directory: Path) -> TestCA:
    """A new CA in `directory` (created); issue server certificates with `.issue()`."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", directory / "ca.key", "-out", directory / "ca.pem", "-days", "2", "-subj", "/CN=s3gw test CA")
    return TestCA(directory, str(directory / "ca.pem"))


@dataclass
class Gateway:
    """A running `s3-encryption-gateway` process with its own generated client credentials."""

    endpoint: str
    access_key: str
    secret_key: str
    log_path: Path
    proc: subprocess.Popen
    env: dict[str, str] = field(default_factory=dict)
    #: CA bundle of an https gateway (`start_gateway(tls=...)`), else None.
    ca_file: str | None = None

    def client(self, **config):
        return make_client(self.endpoint, self.access_key, self.secret_key, verify=self.ca_file, **config)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_text(self) -> str:
        try:
            return self.log_path.with_suffix(".stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """Last lines of stdout (JSON log) and of stderr."""
        out = "\n".join(self.log_text().splitlines()[-lines:])
        err = "\n".join(self.stderr_text().splitlines()[-lines:])
        return out + (f"\n--- stderr:\n{err}" if err else "")

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM, wait for exit, return the exit code (kills after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise HarnessError(f"gateway did not exit within {timeout:.0f}s of SIGTERM")
        return self.proc.returncode


class MemoryCgroup:
    """A cgroup with a memory limit, for a process started in it (`start_gateway(cgroup=...)`): cgroup v2
    (`memory.max`) where /sys/fs/cgroup is the unified hierarchy, else cgroup v1's memory controller
    (`memory.limit_in_bytes`). Needs root, as CI has; `remove()` once its processes ended."""

    def __init__(self, name: str, limit_bytes: int, root: Path = Path("/sys/fs/cgroup")):
        self.v2 = (root / "cgroup.controllers").exists()
        self.path = root / name if self.v2 else root / "memory" / name
        self.limit_bytes = limit_bytes
        try:
            if self.v2:
                controllers = (root / "cgroup.subtree_control").read_text().split()
                if "memory" not in controllers:
                    (root / "cgroup.subtree_control").write_text("+memory")
            self.path.mkdir(exist_ok=True)
            (self.path / ("memory.max" if self.v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        except OSError as exc:
            raise HarnessError(f"cannot create a memory cgroup at {self.path} (root and a writable cgroup "
                               f"file system are needed): {exc}") from exc

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        """Processes of this cgroup the kernel killed for going over its limit."""
        text = (self.path / ("memory.events" if self.v2 else "memory.oom_control")).read_text()
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise HarnessError(f"no oom_kill count in {self.path}")

    def peak_bytes(self) -> int | None:
        """The most memory its processes used at once (cgroup v2's `memory.peak` needs kernel 5.19)."""
        peak = self.path / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")
        return int(peak.read_text()) if peak.exists() else None

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


def gateway_env(backend_endpoint: str, backend_access_key: str, backend_secret_key: str, listen: str,
                access_key: str, secret_key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKEND_", "GATEWAY_"))}
    env.update({
        "LISTEN_ADDR": listen,
        "BACKEND_ENDPOINT": backend_endpoint,
        "BACKEND_REGION": REGION,
        "BACKEND_ACCESS_KEY": backend_access_key,
        "BACKEND_SECRET_KEY": backend_secret_key,
        "GATEWAY_ACCESS_KEY": access_key,
        "GATEWAY_SECRET_KEY": secret_key,
        "ENCRYPTION_PASSWORD": "demo-password-" + secrets.token_hex(8),
        "GATEWAY_PASSTHROUGH": "true",
        "LOG_LEVEL": "info",
        "SHUTDOWN_GRACE_PERIOD": "30s",
    })
    if extra:
        env.update(extra)
    return env


def start_gateway(backend_endpoint: str, backend_access_key: str, backend_secret_key: str, workdir: Path, *,
                  binary: Path | None = None, extra_env: dict[str, str] | None = None, require_ready: bool = True,
                  timeout: float = 30, name: str = "gateway", tls: TestCA | None = None,
                  cgroup: MemoryCgroup | None = None) -> Gateway:
    """Start the gateway on a free loopback port; wait for `GET /health` 200 and (if asked) `GET /ready` 200.

    With `tls`, the gateway serves https with a certificate issued by that CA (`TLS_CERT_FILE`/`TLS_KEY_FILE`);
    `Gateway.client()` and `http_request(..., ca_file=gw.ca_file)` verify against it. With `cgroup`, the gateway
    runs in that cgroup (and under its memory limit) from its first instruction."""
    binary = binary or gateway_bin()
    if not binary.exists():
        raise HarnessError(f"gateway binary not found at {binary}: run `swift build -c release` "
                           f"(or set GATEWAY_BIN)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    access = "GWDEMO" + secrets.token_hex(7).upper()
    secret = secrets.token_urlsafe(30)
    extra_env = dict(extra_env or {})
    if tls is not None:
        cert, key = tls.issue(name)
        extra_env.setdefault("TLS_CERT_FILE", cert)
        extra_env.setdefault("TLS_KEY_FILE", key)
    env = gateway_env(backend_endpoint, backend_access_key, backend_secret_key, f"127.0.0.1:{port}", access,
                      secret, extra_env)
    log_path = workdir / f"{name}.log"  # stdout: the JSON log; stderr goes next to it (`.stderr.log`)
    log = open(log_path, "wb")
    err = open(log_path.with_suffix(".stderr.log"), "wb")
    # In a cgroup: a shell moves itself there, then becomes the gateway (same pid, so `proc` is the gateway).
    argv = [str(binary)] if cgroup is None else \
        ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$1"', str(cgroup.procs_file), str(binary)]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=err,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    scheme = "https" if tls is not None else "http"
    gw = Gateway(endpoint=f"{scheme}://127.0.0.1:{port}", access_key=access, secret_key=secret, log_path=log_path,
                 proc=proc, env=env, ca_file=tls.ca_file if tls is not None else None)
    paths = ["/health", "/ready"] if require_ready else ["/health"]
    deadline = time.monotonic() + timeout
    for path in paths:
        status = None
        while True:
            if proc.poll() is not None:
                raise HarnessError(f"gateway exited with code {proc.returncode} before {path} answered 200; "
                                   f"log {log_path}:\n{gw.log_tail()}")
            try:
                status = http_request("GET", gw.endpoint + path, timeout=2, ca_file=gw.ca_file)[0]
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                gw.terminate()
                raise HarnessError(f"gateway {path} not 200 within {timeout:.0f}s (last status {status}); "
                                   f"log {log_path}:\n{gw.log_tail()}")
            time.sleep(0.1)
    return gw


def write_random(path: Path, size: int) -> None:
    """`size` random bytes into `path`, written 8 MiB at a time."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def parse_json_log(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def new_tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


if __name__ == "__main__":  # tiny CLI for manual use: python3 scripts/s3gw.py backend ceph|moto
    if len(sys.argv) == 3 and sys.argv[1] == "backend":
        b = start_backend(sys.argv[2], new_tmpdir(f"s3gw-{sys.argv[2]}-"))
        print(f"{b.name}: {b.endpoint} access={b.access_key} secret={b.secret_key}  (Ctrl-C stops)")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            b.stop()
    else:
        print("usage: s3gw.py backend ceph|moto", file=sys.stderr)
        sys.exit(2)
