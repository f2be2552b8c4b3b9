#!/usr/bin/env python3
"""A small, faithful double of the Vault/OpenBao HTTP API parts the gateway uses, for tests.

No Vault or OpenBao server can be installed on the test machines, so this process stands in for one.
It follows the documented API (https://developer.hashicorp.com/vault/api-docs/secret/transit,
.../auth/token, .../auth/kubernetes) in paths, request and response JSON, status codes and error
bodies ({"errors": [...]}), and it really encrypts: AES-256-GCM with a fresh 96-bit nonce per call,
ciphertexts `vault:v<N>:<base64(nonce || ciphertext || tag)>` like Vault's `aes256-gcm96` keys. Where
Vault's internals are not part of its API, the double does something simpler and says so:
  * derived keys (`derived=true`) use HMAC-SHA256(key version, context) as the per-context key
    (Vault uses a NIST SP 800-108 counter-mode KDF); the API behaviour (context required, a wrong
    context fails to decrypt) is the same;
  * tokens are random strings with policies `root` or `transit`; `transit` may use every transit path
    and renew/look up itself, nothing else;
  * Kubernetes login checks the JWT against the `--jwt JWT=ROLE` pairs given on the command line
    (a real Vault asks the cluster's TokenReview API).

Double-only endpoints (not Vault API, for test assertions and fault injection), root token required:
  GET  /_double/stats            counters: logins, renewals, encrypt, decrypt, rewrap, denied
  POST /_double/revoke-all       revoke every non-root token (a token revoked early)

Usage: vault_transit_double.py --root-token T [--port 0] [--token-ttl 3600] [--token-max-ttl 86400]
                               [--jwt JWT=ROLE ...] [--k8s-mount kubernetes]
Prints `READY <port>` on stdout when it accepts connections.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class VaultError(Exception):
    def __init__(self, status: int, *errors: str):
        super().__init__(errors)
        self.status = status
        self.errors = list(errors)


class Token:
    def __init__(self, value: str, policies: list[str], ttl: int, max_ttl: int, renewable: bool):
        now = time.time()
        self.value = value
        self.policies = policies
        self.ttl = ttl
        self.renewable = renewable
        self.issued = now
        self.expires = None if ttl == 0 else now + ttl
        self.max_expires = None if max_ttl == 0 else now + max_ttl

    def remaining(self) -> int:
        return 0 if self.expires is None else max(0, int(self.expires - time.time()))

    def valid(self) -> bool:
        return self.expires is None or time.time() < self.expires


class Key:
    def __init__(self, key_type: str, derived: bool):
        self.type = key_type
        self.derived = derived
        self.versions = {1: os.urandom(32)}
        self.times = {1: int(time.time())}
        self.latest = 1
        self.min_decryption_version = 1
        self.min_encryption_version = 0
        self.deletion_allowed = False

    def rotate(self):
        self.latest += 1
        self.versions[self.latest] = os.urandom(32)
        self.times[self.latest] = int(time.time())

    def material(self, version: int, context: bytes | None) -> bytes:
        key = self.versions[version]
        if self.derived:
            return hmac.new(key, context or b"", hashlib.sha256).digest()
        return key


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.tokens: dict[str, Token] = {args.root_token: Token(args.root_token, ["root"], 0, 0, False)}
        self.keys: dict[str, Key] = {}
        self.jwts = dict(pair.split("=", 1) for pair in args.jwt)
        self.stats = {"logins": 0, "renewals": 0, "encrypt": 0, "decrypt": 0, "rewrap": 0, "denied": 0}

    def new_token(self, policies, ttl, max_ttl, renewable) -> Token:
        token = Token("hvs." + secrets.token_urlsafe(24), policies, ttl, max_ttl, renewable)
        self.tokens[token.value] = token
        return token


def b64decode(value, field: str) -> bytes:
    if not isinstance(value, str):
        raise VaultError(400, f"invalid {field}: must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VaultError(400, f"failed to base64-decode {field}")


def auth_block(token: Token) -> dict:
    return {"client_token": token.value, "accessor": hashlib.sha256(token.value.encode()).hexdigest()[:24],
            "policies": token.policies, "token_policies": token.policies, "metadata": None,
            "lease_duration": token.remaining(), "renewable": token.renewable, "entity_id": "", "token_type": "service",
            "orphan": True}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, *args):
        pass

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _reply(self, status: int, body: dict | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            raise VaultError(413, "request too large")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise VaultError(400, "failed to parse JSON input")
        if not isinstance(body, dict):
            raise VaultError(400, "failed to parse JSON input")
        return body

    def _token(self, require_policy: str | None = None) -> Token:
        value = self.headers.get("X-Vault-Token", "")
        token = self.state.tokens.get(value)
        if token is None or not token.valid():
            self.state.stats["denied"] += 1
            raise VaultError(403, "permission denied")
        if require_policy and "root" not in token.policies and require_policy not in token.policies:
            self.state.stats["denied"] += 1
            raise VaultError(403, "permission denied")
        return token

    def _handle(self, method: str):
        try:
            body = self._body() if method in ("POST", "PUT") else {}
            with self.state.lock:
                status, answer = self._route(method, self.path.split("?", 1)[0], body)
            self._reply(status, answer)
        except VaultError as exc:
            self._reply(exc.status, {"errors": exc.errors})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_LIST(self):
        self._handle("LIST")

    # -- routes -----------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: dict):
        s = self.state
        if path == "/v1/sys/health" and method == "GET":
            return 200, {"initialized": True, "sealed": False, "standby": False, "version": "transit-double"}
        if path == "/_double/stats" and method == "GET":
            self._token("root")
            return 200, dict(s.stats)
        if path == "/_double/revoke-all" and method == "POST":
            self._token("root")
            for value in [v for v, t in s.tokens.items() if "root" not in t.policies]:
                del s.tokens[value]
            return 204, None
        if path == "/v1/auth/token/lookup-self" and method == "GET":
            token = self._token()
            return 200, {"data": {"id": token.value, "policies": token.policies, "ttl": token.remaining(),
                                  "renewable": token.renewable, "creation_ttl": token.ttl,
                                  "expire_time": None if token.expires is None else
                                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.expires))}}
        if path == "/v1/auth/token/renew-self" and method == "POST":
            token = self._token()
            if not token.renewable:
                raise VaultError(400, "lease is not renewable")
            increment = body.get("increment")
            ttl = token.ttl if increment in (None, "", 0) else int(str(increment).rstrip("s"))
            new_expiry = time.time() + ttl
            warnings = None
            if token.max_expires is not None and new_expiry > token.max_expires:
                new_expiry = token.max_expires
                warnings = ["TTL of \"%ds\" exceeded the effective max_ttl of \"%ds\"; TTL value is capped accordingly"
                            % (ttl, max(0, int(token.max_expires - time.time())))]
            token.expires = new_expiry
            s.stats["renewals"] += 1
            return 200, {"auth": auth_block(token), "warnings": warnings}
        if path == "/v1/auth/token/create" and method == "POST":
            self._token("root")
            ttl = int(str(body.get("ttl", s.args.token_ttl)).rstrip("s"))
            max_ttl = int(str(body.get("explicit_max_ttl", s.args.token_max_ttl)).rstrip("s"))
            token = s.new_token(body.get("policies") or ["transit"], ttl, max_ttl, bool(body.get("renewable", True)))
            return 200, {"auth": auth_block(token)}
        if path == "/v1/auth/token/revoke" and method == "POST":
            self._token("root")
            s.tokens.pop(body.get("token", ""), None)
            return 204, None
        if path == f"/v1/auth/{s.args.k8s_mount}/login" and method == "POST":
            role, jwt = body.get("role"), body.get("jwt")
            if not role:
                raise VaultError(400, "missing role")
            if not jwt:
                raise VaultError(400, "missing jwt")
            if s.jwts.get(jwt) != role:
                raise VaultError(403, "permission denied")
            token = s.new_token(["transit"], s.args.token_ttl, s.args.token_max_ttl, True)
            s.stats["logins"] += 1
            return 200, {"auth": auth_block(token)}
        match = re.fullmatch(r"/v1/transit/(keys|encrypt|decrypt|rewrap)/([^/]+)(/rotate|/config)?", path)
        if not match:
            raise VaultError(404)
        self._token("transit")
        what, name, sub = match.group(1), match.group(2), match.group(3)
        if what == "keys":
            return self._keys(method, name, sub, body)
        if method != "POST":
            raise VaultError(405)
        key = s.keys.get(name)
        if key is None:
            raise VaultError(400, "encryption key not found")
        context = b64decode(body["context"], "context") if body.get("context") else None
        if key.derived and not context:
            raise VaultError(400, "missing 'context' for key derivation; the key was created using a derived key, "
                                  "which means additional, per-request information must be included in order to "
                                  "perform operations with the key")
        if what == "encrypt":
            plaintext = b64decode(body.get("plaintext"), "plaintext")
            version = int(body.get("key_version") or key.latest)
            s.stats["encrypt"] += 1
            return 200, {"data": {"ciphertext": self._seal(key, version, context, plaintext), "key_version": version}}
        plaintext, _ = self._open(key, body.get("ciphertext"), context)
        if what == "decrypt":
            s.stats["decrypt"] += 1
            return 200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}}
        s.stats["rewrap"] += 1
        return 200, {"data": {"ciphertext": self._seal(key, key.latest, context, plaintext), "key_version": key.latest}}

    def _keys(self, method: str, name: str, sub: str | None, body: dict):
        s = self.state
        key = s.keys.get(name)
        if sub is None and method == "POST":
            if key is None:
                key_type = body.get("type", "aes256-gcm96")
                if key_type != "aes256-gcm96":
                    raise VaultError(400, f"unsupported key type {key_type} (the double implements aes256-gcm96)")
                s.keys[name] = Key(key_type, bool(body.get("derived", False)))
            return 204, None
        if key is None:
            raise VaultError(404)
        if sub is None and method == "GET":
            return 200, {"data": {"name": name, "type": key.type, "derived": key.derived,
                                  "keys": {str(v): t for v, t in key.times.items()}, "latest_version": key.latest,
                                  "min_decryption_version": key.min_decryption_version,
                                  "min_encryption_version": key.min_encryption_version,
                                  "deletion_allowed": key.deletion_allowed, "exportable": False,
                                  "supports_encryption": True, "supports_decryption": True,
                                  "supports_derivation": True, "supports_signing": False}}
        if sub is None and method == "DELETE":
            if not key.deletion_allowed:
                raise VaultError(400, "deletion is not allowed for this key")
            del s.keys[name]
            return 204, None
        if sub == "/rotate" and method == "POST":
            key.rotate()
            return 204, None
        if sub == "/config" and method == "POST":
            if "min_decryption_version" in body:
                key.min_decryption_version = int(body["min_decryption_version"])
            if "deletion_allowed" in body:
                key.deletion_allowed = bool(body["deletion_allowed"])
            return 204, None
        raise VaultError(405)

    @staticmethod
    def _seal(key: Key, version: int, context: bytes | None, plaintext: bytes) -> str:
        if version not in key.versions or version < max(1, key.min_encryption_version):
            raise VaultError(400, "requested version for encryption is not valid")
        nonce = os.urandom(12)
        sealed = AESGCM(key.material(version, context)).encrypt(nonce, plaintext, None)
        return f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()

    @staticmethod
    def _open(key: Key, ciphertext, context: bytes | None) -> tuple[bytes, int]:
        if not isinstance(ciphertext, str) or not ciphertext.startswith("vault:"):
            raise VaultError(400, "invalid ciphertext: no prefix")
        parts = ciphertext.split(":", 2)
        if len(parts) != 3 or not re.fullmatch(r"v[0-9]+", parts[1]):
            raise VaultError(400, "invalid ciphertext: wrong number of fields")
        version = int(parts[1][1:])
        if version < key.min_decryption_version:
            raise VaultError(400, "ciphertext or signature version is disallowed by policy (too old)")
        if version not in key.versions:
            raise VaultError(400, "invalid key version")
        raw = b64decode(parts[2], "ciphertext")
        if len(raw) < 12 + 16:
            raise VaultError(400, "invalid ciphertext: too short")
        try:
            return AESGCM(key.material(version, context)).decrypt(raw[:12], raw[12:], None), version
        except InvalidTag:
            raise VaultError(400, "cipher: message authentication failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root-token", required=True)
    parser.add_argument("--token-ttl", type=int, default=3600)
    parser.add_argument("--token-max-ttl", type=int, default=86400)
    parser.add_argument("--jwt", action="append", default=[], help="JWT=ROLE accepted by Kubernetes login")
    parser.add_argument("--k8s-mount", default="kubernetes")
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
