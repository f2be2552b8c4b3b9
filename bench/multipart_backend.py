#!/usr/bin/env python3
"""A small, fast S3 backend for the multipart benchmarks (bench/multipart.py) — not a test double for correctness.

nginx (bench/passthrough.py) has no multipart uploads and moto is too slow to measure a gateway behind it, so this
serves just what an encrypting or pass-through gateway sends for multipart uploads and reads. Reads are sent with
sendfile; request bodies are read in blocks (readinto) and written to files, about 1.3 s of CPU per GiB here — the
same for both gateways, and printed by bench/multipart.py:

* PUT /b (bucket), PUT /b/k (object; `x-amz-copy-source` copies), POST /b/k?uploads, PUT /b/k?partNumber&uploadId,
  GET /b/k?uploadId (ListParts), POST /b/k?uploadId (Complete), DELETE /b/k?uploadId, HEAD and GET /b/k with one
  `Range` and `If-Match`, GET /b?list-type=2; user metadata (`x-amz-meta-*`, Content-Type) is kept per object.
* Parts of objects whose key starts with `sink/` are read and dropped (the memory bench uploads 4 GiB of parts).
* Signatures are not checked. ETags are random hex (`"…-N"` after Complete): nothing here computes MD5s.
* `GET /__stats` answers the request counts per kind as JSON; `POST /__stats` also resets them. Kinds: `head`,
  `get` (`get-header` when the range is at most 36 bytes: a part-header read), `put`, `part`, `create`,
  `complete`, `list-parts`, `list`, `other`.

  python3 bench/multipart_backend.py --port P --dir D
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import threading
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BLOCK = 1 << 20


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], dict] = {}   # (bucket, key) -> {path, size, etag, meta, mtime}
        self.uploads: dict[str, dict] = {}                # upload id -> {bucket, key, meta, parts: {n: (path, size, etag)}}
        self.counts: dict[str, int] = {}
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "parts").mkdir(parents=True, exist_ok=True)

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def new_path(self, sub: str) -> Path:
        return self.root / sub / secrets.token_hex(12)


def etag() -> str:
    return '"' + secrets.token_hex(16) + '"'


def bare(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store

    def log_message(self, *args) -> None:  # quiet
        pass

    # ---- helpers

    def parse(self) -> tuple[str, str, dict[str, str]]:
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        bucket, _, key = path.lstrip("/").partition("/")
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        return bucket, key, query

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status: int, code: str) -> None:
        self.reply(status, f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message>"
                           f"<RequestId>bench</RequestId></Error>".encode(), {"Content-Type": "application/xml"})

    def xml(self, body: str) -> None:
        self.reply(200, ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode(), {"Content-Type": "application/xml"})

    def read_body(self, sink) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        left = length
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while left:
            n = self.rfile.readinto(view[:min(BLOCK, left)])
            if not n:
                raise ConnectionError("body ended early")
            if sink is not None:
                sink.write(view[:n])
            left -= n
        return length

    def user_meta(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()
                if k.lower().startswith("x-amz-meta-") or k.lower() == "content-type"}

    # ---- verbs

    def do_PUT(self) -> None:
        bucket, key, query = self.parse()
        s = self.store
        if not key:
            s.count("other")
            self.read_body(None)
            return self.reply(200)
        if "uploadId" in query and "partNumber" in query:
            s.count("part")
            with s.lock:
                upload = s.uploads.get(query["uploadId"])
            if upload is None:
                self.read_body(None)
                return self.error(404, "NoSuchUpload")
            if key.startswith("sink/"):
                size, path = self.read_body(None), None
            else:
                path = s.new_path("parts")
                with open(path, "wb") as f:
                    size = self.read_body(f)
            tag = etag()
            with s.lock:
                old = upload["parts"].get(int(query["partNumber"]))
                upload["parts"][int(query["partNumber"])] = (path, size, tag)
            if old and old[0]:
                old[0].unlink(missing_ok=True)
            return self.reply(200, headers={"ETag": tag})
        if self.headers.get("x-amz-copy-source"):
            s.count("copy")
            self.read_body(None)
            src = urllib.parse.unquote(self.headers["x-amz-copy-source"].split("?")[0]).lstrip("/")
            sb, _, sk = src.partition("/")
            with s.lock:
                source = s.objects.get((sb, sk))
            if source is None:
                return self.error(404, "NoSuchKey")
            want = self.headers.get("x-amz-copy-source-if-match")
            if want and bare(want) != bare(source["etag"]):
                return self.error(412, "PreconditionFailed")
            path = s.new_path("objects")
            shutil.copyfile(source["path"], path)
            replace = (self.headers.get("x-amz-metadata-directive") or "").upper() == "REPLACE"
            obj = dict(source, path=path, etag=etag(), mtime=time.time(), meta=self.user_meta() if replace else source["meta"])
            with s.lock:
                old = s.objects.get((bucket, key))
                s.objects[(bucket, key)] = obj
            if old:
                old["path"].unlink(missing_ok=True)
            return self.xml(f"<CopyObjectResult><ETag>{obj['etag']}</ETag>"
                            f"<LastModified>2026-01-01T00:00:00.000Z</LastModified></CopyObjectResult>")
        s.count("put")
        path = s.new_path("objects")
        with open(path, "wb") as f:
            size = self.read_body(f)
        obj = {"path": path, "size": size, "etag": etag(), "meta": self.user_meta(), "mtime": time.time()}
        with s.lock:
            old = s.objects.get((bucket, key))
            s.objects[(bucket, key)] = obj
        if old:
            old["path"].unlink(missing_ok=True)
        self.reply(200, headers={"ETag": obj["etag"]})

    def do_POST(self) -> None:
        bucket, key, query = self.parse()
        s = self.store
        if self.path.startswith("/__stats"):
            self.read_body(None)
            with s.lock:
                counts, s.counts = dict(s.counts), {}
            return self.reply(200, json.dumps(counts).encode(), {"Content-Type": "application/json"})
        if "uploads" in query:
            s.count("create")
            self.read_body(None)
            uid = secrets.token_hex(16)
            with s.lock:
                s.uploads[uid] = {"bucket": bucket, "key": key, "meta": self.user_meta(), "parts": {}}
            return self.xml(f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                            f"<UploadId>{uid}</UploadId></InitiateMultipartUploadResult>")
        if "uploadId" in query:
            s.count("complete")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            with s.lock:
                upload = s.uploads.pop(query["uploadId"], None)
            if upload is None:
                return self.error(404, "NoSuchUpload")
            numbers = [int(n) for n in re.findall(r"<PartNumber>(\d+)</PartNumber>", body)]
            if not numbers or any(n not in upload["parts"] for n in numbers):
                return self.error(400, "InvalidPart")
            path = s.new_path("objects")
            size = 0
            with open(path, "wb") as out:
                for n in numbers:
                    part_path, part_size, _ = upload["parts"][n]
                    if part_path is not None:
                        with open(part_path, "rb") as f:
                            shutil.copyfileobj(f, out, BLOCK)
                    size += part_size
            for part_path, _, _ in upload["parts"].values():
                if part_path is not None:
                    part_path.unlink(missing_ok=True)
            tag = '"' + secrets.token_hex(16) + f'-{len(numbers)}"'
            with s.lock:
                old = s.objects.get((bucket, key))
                s.objects[(bucket, key)] = {"path": path, "size": size, "etag": tag, "meta": upload["meta"], "mtime": time.time()}
            if old:
                old["path"].unlink(missing_ok=True)
            return self.xml(f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                            f"<ETag>{tag}</ETag></CompleteMultipartUploadResult>")
        s.count("other")
        self.read_body(None)
        self.error(501, "NotImplemented")

    def do_DELETE(self) -> None:
        bucket, key, query = self.parse()
        s = self.store
        s.count("other")
        with s.lock:
            if "uploadId" in query:
                upload = s.uploads.pop(query["uploadId"], None)
                for part_path, _, _ in (upload or {"parts": {}})["parts"].values():
                    if part_path is not None:
                        part_path.unlink(missing_ok=True)
            else:
                obj = s.objects.pop((bucket, key), None)
                if obj:
                    obj["path"].unlink(missing_ok=True)
        self.reply(204)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        bucket, key, query = self.parse()
        s = self.store
        if self.path.startswith("/__stats"):
            with s.lock:
                counts = dict(s.counts)
            return self.reply(200, json.dumps(counts).encode(), {"Content-Type": "application/json"})
        if not key:
            s.count("list")
            prefix = query.get("prefix", "")
            with s.lock:
                items = sorted((k, o) for (b, k), o in s.objects.items() if b == bucket and k.startswith(prefix))
            entries = "".join(f"<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                              f"<ETag>{o['etag'].replace(chr(34), '&quot;')}</ETag><Size>{o['size']}</Size>"
                              f"<StorageClass>STANDARD</StorageClass></Contents>" for k, o in items)
            return self.xml(f"<ListBucketResult><Name>{bucket}</Name><Prefix>{prefix}</Prefix><KeyCount>{len(items)}</KeyCount>"
                            f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{entries}</ListBucketResult>")
        if "uploadId" in query:
            s.count("list-parts")
            with s.lock:
                upload = s.uploads.get(query["uploadId"])
                parts = sorted(upload["parts"].items()) if upload else None
            if parts is None:
                return self.error(404, "NoSuchUpload")
            entries = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{t}</ETag><Size>{size}</Size></Part>"
                              for n, (_, size, t) in parts)
            return self.xml(f"<ListPartsResult><Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>{query['uploadId']}</UploadId>"
                            f"<IsTruncated>false</IsTruncated>{entries}</ListPartsResult>")
        with s.lock:
            obj = s.objects.get((bucket, key))
        size = obj["size"] if obj else 0
        rng = self.headers.get("Range")
        first, last = 0, size - 1
        status = 200
        if obj and rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    first = int(m.group(1))
                    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    first, last = max(0, size - int(m.group(2))), size - 1
                status = 206
        if self.command == "HEAD":
            s.count("head")
        else:
            s.count("get-header" if status == 206 and last - first + 1 <= 36 else "get")
        if obj is None:
            return self.error(404, "NoSuchKey")
        want = self.headers.get("If-Match")
        if want and bare(want) != bare(obj["etag"]):
            return self.error(412, "PreconditionFailed")
        if status == 206 and first > last:
            return self.error(416, "InvalidRange")
        self.send_response(status)
        for k, v in obj["meta"].items():
            self.send_header(k, v)
        self.send_header("ETag", obj["etag"])
        self.send_header("Last-Modified", formatdate(obj["mtime"], usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1 if size else 0))
        self.end_headers()
        if self.command == "HEAD" or not size:
            return
        self.wfile.flush()
        with open(obj["path"], "rb") as f:
            offset, left = first, last - first + 1
            while left:
                sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, min(left, 64 * BLOCK))
                if sent <= 0:
                    raise ConnectionError("sendfile sent nothing")
                offset += sent
                left -= sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    Handler.store = Store(args.dir)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
