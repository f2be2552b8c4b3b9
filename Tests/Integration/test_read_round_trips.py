"""Backend round trips of encrypted reads (issue 12, FORMAT.md §7): a GET of an encrypted object costs the backend
one GET whose answer carries the metadata, ranged reads ask for the covering ciphertext at once (redone only for a
non-default chunk size), conditional reads are answered from that answer's head, and a HEAD is one HEAD. A recording
proxy between the gateway and the real backend (Ceph RGW and moto) counts what the backend sees."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

import s3gw
from conftest import ENC_PASSWORD

pytestmark = pytest.mark.gateway_only

C = 65536          # the default chunk size
SEALED = C + 16


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@dataclass
class CountingProxy:
    """Forwards to the backend and records (method, path, Range) of every request."""

    target: str
    seen: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: _Server | None = None

    def start(self) -> str:
        proxy = self
        target = urllib.parse.urlsplit(self.target)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.seen.append((self.command, urllib.parse.urlsplit(self.path).path, self.headers.get("Range")))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the gateway cut off a body it did not need

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, key: str) -> list[tuple[str, str | None]]:
        """(method, Range) of the requests for objects whose path ends in `key` since the last call."""
        with self.lock:
            mine = [(m, r) for m, p, r in self.seen if p.endswith("/" + key)]
            self.seen.clear()
        return mine

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def counted(backend, gateway_binary, tmp_root):
    """(proxy, default gateway, gateway writing 16 KiB chunks), both encrypting through the counting proxy."""
    proxy = CountingProxy(backend.endpoint)
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
    proxy.take("obj")
    assert s3.get_object(Bucket=rt_bucket, Key="obj")["Body"].read() == data
    assert proxy.take("obj") == [("GET", None)]
    # A range asks for exactly the covering chunks of the default layout, in the same single request.
    got = s3.get_object(Bucket=rt_bucket, Key="obj", Range=f"bytes={C + 10}-{C + 20}")
    assert got["Body"].read() == data[C + 10:C + 21]
    assert got["ContentRange"] == f"bytes {C + 10}-{C + 20}/{len(data)}"
    assert proxy.take("obj") == [("GET", f"bytes={SEALED}-{2 * SEALED - 1}")]
    got = s3.get_object(Bucket=rt_bucket, Key="obj", Range=f"bytes={2 * C}-")
    assert got["Body"].read() == data[2 * C:]
    assert proxy.take("obj") == [("GET", f"bytes={2 * SEALED}-")]
    # Past the end: answered 416 from the same answer.
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=rt_bucket, Key="obj", Range=f"bytes={3 * C + 100}-")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert proxy.take("obj") == [("GET", f"bytes={3 * SEALED}-")]
    # A HEAD is one HEAD; a suffix range needs the size first.
    assert s3.head_object(Bucket=rt_bucket, Key="obj")["ContentLength"] == len(data)
    assert proxy.take("obj") == [("HEAD", None)]
    assert s3.get_object(Bucket=rt_bucket, Key="obj", Range="bytes=-5")["Body"].read() == data[-5:]
    assert [m for m, _ in proxy.take("obj")] == ["HEAD", "GET"]


def test_conditional_reads_are_decided_on_the_same_answer(counted, rt_bucket):
    proxy, gw, _ = counted
    s3 = gw.client()
    data = _content(1000)
    etag = s3.put_object(Bucket=rt_bucket, Key="cond", Body=data)["ETag"]
    proxy.take("cond")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=rt_bucket, Key="cond", IfNoneMatch=etag)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=rt_bucket, Key="cond", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=rt_bucket, Key="cond", IfMatch=etag)["Body"].read() == data
    assert proxy.take("cond") == [("GET", None)] * 3


def test_another_chunk_size_is_read_again_with_the_right_range(counted, rt_bucket):
    proxy, gw, small = counted
    data = _content(5 * 16384 + 3)
    small.client().put_object(Bucket=rt_bucket, Key="small", Body=data)
    proxy.take("small")
    s3 = gw.client()
    assert s3.get_object(Bucket=rt_bucket, Key="small")["Body"].read() == data
    assert proxy.take("small") == [("GET", None)]  # a whole read does not depend on the chunk size
    got = s3.get_object(Bucket=rt_bucket, Key="small", Range="bytes=40000-40009")
    assert got["Body"].read() == data[40000:40010]
    s = 16384 + 16
    assert proxy.take("small") == [("GET", "bytes=0-65551"), ("GET", f"bytes={2 * s}-{3 * s - 1}")]


def test_a_large_unneeded_body_is_cut_off_and_the_read_redone(counted, rt_bucket):
    proxy, gw, small = counted
    data = _content(40 * 16384)
    small.client().put_object(Bucket=rt_bucket, Key="large", Body=data)
    proxy.take("large")
    got = gw.client().get_object(Bucket=rt_bucket, Key="large", Range=f"bytes={5 * 16384}-")
    assert got["Body"].read() == data[5 * 16384:]
    s = 16384 + 16
    assert proxy.take("large") == [("GET", "bytes=65552-"), ("GET", f"bytes={5 * s}-{40 * s - 1}")]
