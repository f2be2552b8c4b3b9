#!/usr/bin/env python3
"""A small real HTTP/1.1 server for the HTTPClient tests.

Prints its port on the first line of stdout, then serves until killed.
Paths:
  GET  /bytes/N          N bytes (pattern i % 251), Content-Length framed
  HEAD /head-with-body   a HEAD answer followed by body bytes (a protocol violation)
  GET  /stall            headers, 10 bytes, then silence for 30 s
  GET  /endless          chunked body that never ends (1 KiB every 50 ms)
  GET  /status/N         empty response with status N
  GET  http://…          (asked as a proxy) 200 with X-Proxied-Target; 407 for a target ending /proxy-auth-required
  GET  /headers          JSON of the request headers
  ANY  /echo             200, body = sha256 hex of the request body; header X-Body-Length
"""
import hashlib
import json
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out as two writes: without TCP_NODELAY the body waits for the client's delayed ACK
    # (about 40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length)

    def _route(self):
        path = self.path
        if path.startswith("http://") and path.endswith("/proxy-auth-required"):
            # A forward proxy that wants credentials.
            self._send(407, b"<html>proxy credentials needed</html>", {"Proxy-Authenticate": 'Basic realm="test"'})
        elif path.startswith("http://"):
            # Asked as a forward proxy (absolute-form target): says so instead of forwarding.
            self._send(200, b"proxied", {"X-Proxied-Target": path})
        elif path.startswith("/bytes/"):
            n = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.send_header("X-Test", "bytes")
            self.end_headers()
            if self.command == "HEAD":
                return
            block = bytes(i % 251 for i in range(251 * 1024))
            sent = 0
            while sent < n:
                piece = block[: min(len(block), n - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        elif path == "/head-with-body":
            # A broken server (as Ceph RGW on HEAD /): a body after a HEAD response head,
            # left on the kept-alive connection for the next request to trip over.
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.flush()
            # Late, so the client's idle-connection check still finds the connection clean.
            time.sleep(0.3)
            self.wfile.write(b"hello")
        elif path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(30)
        elif path == "/endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for _ in range(2000):
                    self.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif path.startswith("/status/"):
            self._send(int(path.split("/")[2]))
        elif path == "/headers":
            body = self._read_body()
            self._send(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode(),
                       {"Content-Type": "application/json", "X-Method": self.command, "X-Body-Length": str(len(body))})
        elif path == "/echo":
            try:
                body = self._read_body()
            except (OSError, ValueError):
                self.close_connection = True
                return
            declared = self.headers.get("Content-Length")
            if declared is not None and len(body) != int(declared):
                # The client aborted mid-body: the request never completed.
                self.close_connection = True
                return
            self._send(200, hashlib.sha256(body).hexdigest().encode(),
                       {"X-Body-Length": str(len(body)), "X-Method": self.command})
        else:
            self._send(404, b"not found")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _route


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
