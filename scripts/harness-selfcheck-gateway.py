#!/usr/bin/env python3
# Harness self-check only, never used by make test/run/bench: a minimal Python stand-in for the gateway, so
# changes to the integration harness can be validated without the Swift binary:
#   GATEWAY_BIN=scripts/harness-selfcheck-gateway.py python3 -m pytest Tests/Integration
# It verifies SigV4 header auth with GATEWAY_* keys, re-signs for the backend, health/ready/metrics, JSON logs.
import hashlib, hmac, http.client, http.server, json, os, signal, socket, socketserver, sys, threading, time, urllib.parse, uuid, datetime
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3gw

def die(var, why):
    print(json.dumps({"level": "error", "msg": f"configuration error: {var}: {why}", "time": time.time()}), flush=True)
    sys.exit(2)
for v in ("GATEWAY_ACCESS_KEY", "GATEWAY_SECRET_KEY", "BACKEND_ACCESS_KEY", "BACKEND_SECRET_KEY", "BACKEND_ENDPOINT"):
    if not os.environ.get(v): die(v, "required")
be = urllib.parse.urlsplit(os.environ["BACKEND_ENDPOINT"])
if be.scheme not in ("http", "https") or not be.hostname or " " in os.environ["BACKEND_ENDPOINT"]:
    die("BACKEND_ENDPOINT", "must be http(s)://host:port")
GK, GS = os.environ["GATEWAY_ACCESS_KEY"], os.environ["GATEWAY_SECRET_KEY"]
BK, BS = os.environ["BACKEND_ACCESS_KEY"], os.environ["BACKEND_SECRET_KEY"]
host, port = os.environ["LISTEN_ADDR"].rsplit(":", 1)
lock = threading.Lock(); REQS = [0]; ACTIVE = [0]
def log(level, msg, **kw): print(json.dumps({"level": level, "msg": msg, "time": datetime.datetime.utcnow().isoformat() + "Z", **kw}), flush=True)

def signature(method, path, query, hdrs, signed, payload, amz_date, scope, secret):
    q = urllib.parse.parse_qsl(query, keep_blank_values=True)
    cq = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(q))
    p = urllib.parse.quote(urllib.parse.unquote(path), safe="/-_.~")
    canon = "\n".join([method, p, cq, "".join(f"{k}:{' '.join(hdrs.get(k, '').split())}\n" for k in signed), ";".join(signed), payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canon.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"): key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()

FWD = ("content-type", "content-md5", "range", "cache-control", "content-disposition", "content-encoding", "expires", "if-match", "if-none-match")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, st, body=b"", hdrs=()):
        self.send_response(st); self.send_header("x-amz-request-id", self.rid)
        for k, v in hdrs: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def err(self, st, code):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n: self.rfile.read(n)
        self.reply(st, f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><RequestId>{self.rid}</RequestId></Error>".encode(), [("Content-Type", "application/xml")])
    def handle_one(self):
        self.rid = uuid.uuid4().hex
        with lock: REQS[0] += 1; ACTIVE[0] += 1
        try: self.inner()
        finally:
            with lock: ACTIVE[0] -= 1
    def inner(self):
        parts = urllib.parse.urlsplit(self.path)
        auth = self.headers.get("Authorization")
        anon = auth is None and "X-Amz-" not in parts.query
        if anon and parts.path in ("/health", "/ready", "/metrics") and self.command == "GET":
            if parts.path == "/metrics":
                b = (f"# TYPE s3_gateway_requests_total counter\ns3_gateway_requests_total{{op=\"all\"}} {REQS[0]}\n"
                     f"s3_gateway_active_connections {ACTIVE[0]}\ns3_gateway_encryption_duration_seconds_count 0\ns3_gateway_encryption_duration_seconds_sum 0\n").encode()
                return self.reply(200, b, [("Content-Type", "text/plain; version=0.0.4")])
            st = 200
            if parts.path == "/ready":
                try: socket.create_connection((be.hostname, be.port), 1).close()
                except OSError: st = 503
            return self.reply(st, b"ok")
        if auth is None: return self.err(403, "AccessDenied")
        try:
            cred = auth.split("Credential=")[1].split(",")[0]; signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";"); sig = auth.split("Signature=")[1].strip()
            ak, scope = cred.split("/", 1)
        except Exception: return self.err(400, "AuthorizationHeaderMalformed")
        if ak != GK: return self.err(403, "InvalidAccessKeyId")
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        payload = hdrs.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        if signature(self.command, parts.path, parts.query, hdrs, signed, payload, hdrs.get("x-amz-date", ""), scope, GS) != sig:
            return self.err(403, "SignatureDoesNotMatch")
        n = int(self.headers.get("Content-Length", "0") or 0)
        fwd = {k: v for k, v in hdrs.items() if k in FWD or (k.startswith("x-amz-") and k not in ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token"))}
        if n or self.command in ("PUT", "POST"): fwd["content-length"] = str(n)
        url = f"{be.scheme}://{be.netloc}{self.path}"
        out = s3gw.sigv4_headers(self.command, url, BK, BS, payload_hash=payload, headers=fwd)
        c = http.client.HTTPConnection(be.hostname, be.port, timeout=120)
        try: c.connect()
        except OSError:
            return self.err(503, "ServiceUnavailable")
        c.putrequest(self.command, self.path, skip_accept_encoding=True)
        for k, v in out.items(): c.putheader(k, v)
        c.endheaders()
        while n:
            d = self.rfile.read(min(n, 1 << 20)); c.send(d); n -= len(d)
        r = c.getresponse()
        body_len = r.getheader("Content-Length")
        self.send_response(r.status); self.send_header("x-amz-request-id", self.rid)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "server", "date", "x-amz-request-id", "content-length"): self.send_header(k, v)
        if body_len is None:
            data = r.read(); self.send_header("Content-Length", str(len(data))); self.end_headers()
            if self.command != "HEAD": self.wfile.write(data)
        else:
            self.send_header("Content-Length", body_len); self.end_headers()
            if self.command != "HEAD":
                while True:
                    d = r.read(1 << 20)
                    if not d: break
                    self.wfile.write(d)
        c.close()
    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = handle_one
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S((host, int(port)), H)
log("info", "listening", addr=f"{host}:{port}")
def term(*a):
    def go():
        s.shutdown()
        deadline = time.time() + 30
        while time.time() < deadline:
            with lock:
                if ACTIVE[0] == 0: break
            time.sleep(0.05)
        log("info", "stopped"); os._exit(0)
    threading.Thread(target=go).start()
signal.signal(signal.SIGTERM, term)
s.serve_forever()
while True: time.sleep(1)
