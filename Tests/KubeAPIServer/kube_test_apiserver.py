#!/usr/bin/env python3
"""A small, faithful-where-it-matters Kubernetes API server for tests (Python 3 standard library only).

Generic storage for any group/version/resource; resourceVersions from one global counter; paged LIST with
continue tokens; WATCH as a chunked stream with bookmarks, bounded replay history and 410 Expired; create,
update with resourceVersion preconditions, status subresource, merge patch, server-side apply with per-manager
field ownership and conflicts, delete with ownerReference garbage collection; bearer-token auth (and optional
client certificates) with rotation; fault injection and watch dropping under /__control/. See
docs/operator-client.md for the control endpoints.

Usage: kube_test_apiserver.py [--port 0] [--ready-file F] [--tls-cert C --tls-key K [--client-ca CA]]
                              [--token T ...] [--history N] [--bookmark-interval S]
"""

import argparse
import base64
import collections
import copy
import datetime
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

# Resources whose "status" is a subresource: writes to the main resource ignore status, /status writes change
# only status.
STATUS_RESOURCES = {
    "deployments", "statefulsets", "daemonsets", "replicasets", "pods", "services", "namespaces", "jobs",
    "horizontalpodautoscalers", "poddisruptionbudgets", "encryptiongateways", "customresourcedefinitions",
    "persistentvolumeclaims", "nodes", "ingresses",
}
KNOWN_KINDS = {
    "configmaps": "ConfigMap", "secrets": "Secret", "services": "Service", "pods": "Pod",
    "namespaces": "Namespace", "serviceaccounts": "ServiceAccount", "events": "Event", "leases": "Lease",
    "deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet",
    "replicasets": "ReplicaSet", "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "poddisruptionbudgets": "PodDisruptionBudget", "networkpolicies": "NetworkPolicy",
    "encryptiongateways": "EncryptionGateway", "endpoints": "Endpoints",
}
SYSTEM_METADATA = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                   "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generateName"}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_BODY = 16 << 20


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


class APIError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.status = status_obj(code, reason, message, details)
        self.code = code
        self.headers = headers or {}


# ---------------------------------------------------------------------------------------------------------------
# Field ownership (server-side apply)

def leaf_paths(value, prefix=()):
    """Leaf field paths of an object: dict keys recursed, lists/scalars/empty dicts are leaves."""
    out = set()
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out |= leaf_paths(v, prefix + (k,))
    elif prefix:
        out.add(prefix)
    return out


def owned_paths(obj, part):
    """Paths a manager can own. part: 'main' (everything but status for status resources) or 'status'."""
    paths = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata":
            if isinstance(v, dict):
                for mk, mv in v.items():
                    if mk in SYSTEM_METADATA:
                        continue
                    if mk in ("labels", "annotations") and isinstance(mv, dict):
                        paths |= {("metadata", mk, lk) for lk in mv}
                    else:
                        paths.add(("metadata", mk))
            continue
        if part == "status" and k != "status":
            continue
        if part == "main-no-status" and k == "status":
            continue
        paths |= leaf_paths(v, (k,))
    return paths


def get_path(obj, path):
    cur = obj
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return (False, None)
        cur = cur[k]
    return (True, cur)


def set_path(obj, path, value):
    cur = obj
    for k in path[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    cur[path[-1]] = copy.deepcopy(value)


def remove_path(obj, path):
    """Remove a leaf and prune parents left empty by the removal."""
    stack = []
    cur = obj
    for k in path[:-1]:
        if not isinstance(cur, dict) or k not in cur:
            return
        stack.append((cur, k))
        cur = cur[k]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    while stack:
        parent, k = stack.pop()
        if isinstance(parent[k], dict) and not parent[k] and not (len(stack) == 0 and k in ("spec", "metadata", "status")):
            del parent[k]
        else:
            break


def fields_v1(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for k in p:
            cur = cur.setdefault("f:" + k, {})
    return root


def path_str(p):
    return "." + ".".join(p)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ---------------------------------------------------------------------------------------------------------------
# Store

class Store:
    def __init__(self, history_size, status_resources):
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {}          # (group, resource) -> {(ns, name): obj}
        self.ownership = {}        # (group, resource, ns, name) -> {(manager, operation, subresource): set(paths)}
        self.history = collections.deque()   # (rv, group, resource, type, obj)
        self.history_size = history_size
        self.compacted_rv = 0      # events with rv <= this may be gone
        self.status_resources = set(status_resources)

    def next_rv(self):
        self.rv += 1
        return self.rv

    def record(self, group, resource, etype, obj):
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, group, resource, etype, copy.deepcopy(obj)))
        while len(self.history) > self.history_size:
            old = self.history.popleft()
            self.compacted_rv = max(self.compacted_rv, old[0])
        self.cond.notify_all()

    def compact(self):
        # Bump the revision first so everything handed out so far (list RVs, continue tokens, watch positions,
        # including those of idle, caught-up watches) is older than the compaction and answers 410.
        with self.cond:
            self.history.clear()
            self.compacted_rv = self.next_rv()
            self.cond.notify_all()
            return self.rv

    def table(self, group, resource):
        return self.objects.setdefault((group, resource), {})


def qualified(group, resource):
    return resource if not group else f"{resource}.{group}"


def parse_label_selector(sel):
    reqs = []
    if not sel:
        return reqs
    for part in sel.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)$", part)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
        elif re.match(r"^![A-Za-z0-9_./-]+$", part):
            reqs.append((part[1:], "!exists", None))
        elif re.match(r"^[A-Za-z0-9_./-]+$", part):
            reqs.append((part, "exists", None))
        else:
            raise APIError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return reqs


def parse_field_selector(sel):
    reqs = []
    if not sel:
        return reqs
    for part in sel.split(","):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$", part.strip())
        if not m:
            raise APIError(400, "BadRequest", f"invalid field selector: {part!r}")
        reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return reqs


def matches(obj, label_reqs, field_reqs):
    labels = obj.get("metadata", {}).get("labels") or {}
    for key, op, val in label_reqs:
        if op == "=" and labels.get(key) != val:
            return False
        if op == "!=" and labels.get(key) == val:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    for key, op, val in field_reqs:
        ok, cur = get_path(obj, tuple(key.split(".")))
        cur = cur if ok else ""
        if (op == "=" and str(cur) != val) or (op == "!=" and str(cur) == val):
            return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# Server state shared by handlers

class State:
    def __init__(self, args):
        self.store = Store(args.history, STATUS_RESOURCES | set(args.status_resource or []))
        self.tokens = set(args.token or [])
        self.auth_enabled = bool(args.token) or bool(args.client_ca)
        self.bookmark_interval = args.bookmark_interval
        self.lock = threading.Lock()
        self.injections = []       # dicts: method, pathPrefix, watch, count, code, reason, message, retryAfter
        self.expired_watch_as_http = False
        self.watches = set()       # active watch handlers
        self.requests = collections.deque(maxlen=2000)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-test-apiserver/1"
    state: State = None

    def log_message(self, fmt, *args):
        if os.environ.get("KUBE_TEST_APISERVER_LOG"):
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    # -- plumbing ------------------------------------------------------------------------------------------------

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline(16)
                if len(data) > MAX_BODY:
                    raise APIError(413, "RequestEntityTooLarge", "request body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise APIError(413, "RequestEntityTooLarge", "request body too large")
        return self.rfile.read(n) if n else b""

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj, sort_keys=True).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_error_status(self, err):
        self.send_json(err.code, err.status, err.headers)

    def do_GET(self): self.dispatch("GET")
    def do_POST(self): self.dispatch("POST")
    def do_PUT(self): self.dispatch("PUT")
    def do_PATCH(self): self.dispatch("PATCH")
    def do_DELETE(self): self.dispatch("DELETE")

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self.read_body()
        except APIError as e:
            self.close_connection = True
            return self.send_error_status(e)
        if url.path.startswith("/__control/"):
            return self.control(method, url.path, query, body)
        st = self.state
        st.requests.append({"method": method, "path": url.path, "query": query,
                            "contentType": self.headers.get("Content-Type"),
                            "authorization": self.headers.get("Authorization"),
                            "userAgent": self.headers.get("User-Agent")})
        try:
            self.authenticate()
            self.inject(method, url.path, query)
            self.api(method, url.path, query, body)
        except APIError as e:
            self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in this server: answer 500 rather than dropping the connection
            self.close_connection = True
            if not getattr(self, "streaming", False):
                self.send_json(500, status_obj(500, "InternalError", f"test API server bug: {e!r}"))
            else:
                raise

    def authenticate(self):
        st = self.state
        if not st.auth_enabled:
            return
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            with st.lock:
                if auth[7:] in st.tokens:
                    return
        if isinstance(self.connection, ssl.SSLSocket) and self.connection.getpeercert():
            return
        raise APIError(401, "Unauthorized", "Unauthorized")

    def inject(self, method, path, query):
        st = self.state
        is_watch = query.get("watch") in ("1", "true")
        with st.lock:
            for inj in st.injections:
                if inj["count"] <= 0:
                    continue
                if inj.get("method") and inj["method"] != method:
                    continue
                if not path.startswith(inj.get("pathPrefix", "/")):
                    continue
                if inj.get("watch") is not None and bool(inj["watch"]) != is_watch:
                    continue
                inj["count"] -= 1
                headers = {}
                details = None
                if inj.get("retryAfter") is not None:
                    headers["Retry-After"] = str(inj["retryAfter"])
                    details = {"retryAfterSeconds": inj["retryAfter"]}
                raise APIError(inj.get("code", 429), inj.get("reason", "TooManyRequests"),
                               inj.get("message", "injected failure"), details, headers)

    # -- control endpoints ---------------------------------------------------------------------------------------

    def control(self, method, path, query, body):
        st = self.state
        try:
            args = json.loads(body) if body else {}
        except ValueError:
            return self.send_json(400, {"error": "body must be JSON"})
        name = path[len("/__control/"):]
        if name == "tokens" and method == "POST":
            with st.lock:
                st.tokens = set(args.get("tokens", []))
                st.auth_enabled = True
            return self.send_json(200, {"tokens": len(st.tokens)})
        if name == "inject" and method == "POST":
            inj = dict(args)
            inj.setdefault("count", 1)
            with st.lock:
                st.injections.append(inj)
            return self.send_json(200, {"ok": True})
        if name == "inject" and method == "DELETE":
            with st.lock:
                st.injections.clear()
            return self.send_json(200, {"ok": True})
        if name == "compact" and method == "POST":
            return self.send_json(200, {"compactedResourceVersion": str(st.store.compact())})
        if name == "config" and method == "POST":
            if "expiredWatchAsHTTPStatus" in args:
                st.expired_watch_as_http = bool(args["expiredWatchAsHTTPStatus"])
            if "bookmarkInterval" in args:
                st.bookmark_interval = float(args["bookmarkInterval"])
            return self.send_json(200, {"ok": True})
        if name == "drop-watches" and method == "POST":
            with st.lock:
                victims = list(st.watches)
            for h in victims:
                h.kill()
            with st.store.cond:
                st.store.cond.notify_all()
            return self.send_json(200, {"dropped": len(victims)})
        if name == "watches" and method == "GET":
            with st.lock:
                return self.send_json(200, {"active": len(st.watches)})
        if name == "requests" and method == "GET":
            return self.send_json(200, {"requests": list(st.requests)})
        if name == "requests" and method == "DELETE":
            st.requests.clear()
            return self.send_json(200, {"ok": True})
        if name == "healthz":
            return self.send_json(200, {"ok": True, "resourceVersion": str(st.store.rv)})
        return self.send_json(404, {"error": f"unknown control endpoint {method} {path}"})

    def kill(self):
        self.killed = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- the API -------------------------------------------------------------------------------------------------

    def parse_path(self, path):
        segs = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
        if len(segs) >= 2 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
        if not rest:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or any(s == "" for s in rest):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return group, version, resource, ns, name, sub

    # Discovery: the groups the operator writes, at the versions a current cluster serves (GET /apis only).
    API_GROUPS = [("apps", "v1"), ("autoscaling", "v2"), ("policy", "v1"), ("networking.k8s.io", "v1"),
                  ("coordination.k8s.io", "v1"), ("events.k8s.io", "v1"), ("s3gateway.dev", "v1alpha1")]

    def api(self, method, path, query, body):
        if method == "GET" and path.rstrip("/") == "/apis":
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in self.API_GROUPS]
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        group, version, resource, ns, name, sub = self.parse_path(path)
        ctx = (group, version, resource, ns, name, sub)
        if sub not in (None, "status"):
            raise APIError(404, "NotFound", f"subresource {sub} not supported")
        if method == "GET" and name is None:
            if query.get("watch") in ("1", "true"):
                return self.watch(ctx, query)
            return self.list(ctx, query)
        if method == "POST" and name is None:
            return self.create(ctx, query, self.json_body(body))
        if name is None:
            raise APIError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if method == "GET":
            return self.get(ctx)
        if method == "PUT":
            return self.update(ctx, query, self.json_body(body))
        if method == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype == "application/apply-patch+yaml":
                return self.apply(ctx, query, self.json_body(body, apply=True))
            if ctype == "application/merge-patch+json":
                return self.merge(ctx, query, self.json_body(body))
            raise APIError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        if method == "DELETE":
            return self.delete(ctx, query, body)
        raise APIError(405, "MethodNotAllowed", f"{method} not allowed")

    def json_body(self, body, apply=False):
        try:
            v = json.loads(body or b"null")
        except ValueError as e:
            what = "apply patch (only JSON bodies are supported by the test server)" if apply else "body"
            raise APIError(400, "BadRequest", f"invalid {what}: {e}")
        if not isinstance(v, dict):
            raise APIError(400, "BadRequest", "request body must be a JSON object")
        return v

    def not_found(self, group, resource, name):
        return APIError(404, "NotFound", f'{qualified(group, resource)} "{name}" not found',
                        {"name": name, "group": group, "kind": resource})

    def kind_for(self, resource, obj=None):
        if obj and isinstance(obj.get("kind"), str) and obj["kind"]:
            return obj["kind"]
        return KNOWN_KINDS.get(resource, resource[:1].upper() + resource[1:].rstrip("s"))

    # GET
    def get(self, ctx):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        with st.cond:
            obj = st.table(group, resource).get((ns or "", name))
            if obj is None:
                raise self.not_found(group, resource, name)
            obj = copy.deepcopy(obj)
        self.send_json(200, obj)

    # LIST
    def list(self, ctx, query):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        limit = int(query.get("limit") or 0)
        cont = query.get("continue")
        start_after = None
        with st.cond:
            list_rv = st.rv
            if cont:
                try:
                    tok = json.loads(base64.b64decode(cont))
                    list_rv, start_after = int(tok["rv"]), tuple(tok["start"])
                except Exception:
                    raise APIError(400, "BadRequest", "invalid continue token")
                if list_rv < st.compacted_rv:
                    raise APIError(410, "Expired",
                                   "The provided continue parameter is too old to display a consistent list result. "
                                   "You can start a new list without the continue parameter.")
            keys = sorted(k for k in st.table(group, resource) if ns is None or k[0] == ns)
            items = []
            next_token = None
            for k in keys:
                if start_after is not None and k <= start_after:
                    continue
                obj = st.table(group, resource)[k]
                if not matches(obj, labels, fields):
                    continue
                if limit and len(items) == limit:
                    next_token = base64.b64encode(json.dumps({"rv": list_rv, "start": list(last)}).encode()).decode()
                    break
                item = copy.deepcopy(obj)
                # Like the real server: list items carry no apiVersion/kind.
                item.pop("apiVersion", None)
                item.pop("kind", None)
                items.append(item)
                last = k
        meta = {"resourceVersion": str(list_rv)}
        if next_token:
            meta["continue"] = next_token
        kind = self.kind_for(resource) + "List"
        self.send_json(200, {"kind": kind, "apiVersion": f"{group}/{version}" if group else version,
                             "metadata": meta, "items": items})

    # WATCH
    def watch(self, ctx, query):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        timeout = float(query.get("timeoutSeconds") or 1800)
        rv_param = query.get("resourceVersion") or ""
        api_version = f"{group}/{version}" if group else version
        kind = self.kind_for(resource)

        def wanted(g, r, obj):
            return g == group and r == resource and (ns is None or obj["metadata"].get("namespace", "") == ns) \
                and matches(obj, labels, fields)

        initial = []
        expired = None
        with st.cond:
            if rv_param in ("", "0"):
                pos = st.rv
                for k in sorted(st.table(group, resource)):
                    obj = st.table(group, resource)[k]
                    if (ns is None or k[0] == ns) and matches(obj, labels, fields):
                        initial.append(("ADDED", copy.deepcopy(obj)))
            else:
                try:
                    pos = int(rv_param)
                except ValueError:
                    raise APIError(400, "BadRequest", f"invalid resourceVersion {rv_param!r}")
                if pos < st.compacted_rv:
                    expired = f"too old resource version: {pos} ({st.compacted_rv + 1})"
        if expired and self.state.expired_watch_as_http:
            raise APIError(410, "Expired", expired)

        self.killed = False
        self.streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with self.state.lock:
            self.state.watches.add(self)
        try:
            def emit(etype, obj):
                line = json.dumps({"type": etype, "object": obj}, sort_keys=True).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()

            def bookmark(rv):
                emit("BOOKMARK", {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": str(rv)}})

            if expired:
                emit("ERROR", status_obj(410, "Expired", expired))
                self.wfile.write(b"0\r\n\r\n")
                return
            for etype, obj in initial:
                emit(etype, obj)
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.state.bookmark_interval
            while True:
                pending = []
                gone = None
                with st.cond:
                    if self.killed:
                        break
                    if pos < st.compacted_rv:
                        gone = f"too old resource version: {pos} ({st.compacted_rv + 1})"
                    else:
                        for (rv, g, r, etype, obj) in st.history:
                            if rv > pos and wanted(g, r, obj):
                                pending.append((rv, etype, obj))
                        if not pending:
                            pos = st.rv
                            wait = min(deadline, next_bookmark) - time.monotonic()
                            if wait > 0:
                                st.cond.wait(min(wait, 1.0))
                        if self.killed:
                            break
                if gone:
                    emit("ERROR", status_obj(410, "Expired", gone))
                    break
                for rv, etype, obj in pending:
                    emit(etype, obj)
                    pos = rv
                now = time.monotonic()
                if now >= deadline:
                    if bookmarks:
                        with st.cond:
                            caught_up = not any(rv > pos and wanted(g, r, o) for (rv, g, r, _, o) in st.history)
                            if caught_up:
                                pos = max(pos, st.rv)
                        bookmark(pos)
                    break
                if bookmarks and now >= next_bookmark:
                    bookmark(pos)
                    next_bookmark = now + self.state.bookmark_interval
                elif not bookmarks and now >= next_bookmark:
                    next_bookmark = now + self.state.bookmark_interval
            if self.killed:
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with self.state.lock:
                self.state.watches.discard(self)

    # writes ---------------------------------------------------------------------------------------------------

    def manager_name(self, query, default="unknown"):
        return query.get("fieldManager") or default

    def check_meta(self, ctx, obj, name_required=True):
        group, version, resource, ns, name, sub = ctx
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise APIError(422, "Invalid", "metadata must be an object")
        if ns is not None:
            if meta.get("namespace") not in (None, "", ns):
                raise APIError(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        obj_name = meta.get("name")
        if name is not None and obj_name not in (None, name):
            raise APIError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if name is not None:
            meta["name"] = name
        n = meta.get("name")
        if name_required and not n:
            raise APIError(422, "Invalid", "metadata.name: Required value: name or generateName is required",
                           {"causes": [{"field": "metadata.name", "reason": "FieldValueRequired"}]})
        if n and not NAME_RE.match(n):
            raise APIError(422, "Invalid", f'{qualified(group, resource)} "{n}" is invalid: metadata.name: Invalid value: '
                                           f'"{n}": a lowercase RFC 1123 subdomain must consist of lower case '
                                           f"alphanumeric characters, '-' or '.'",
                           {"name": n, "causes": [{"field": "metadata.name", "reason": "FieldValueInvalid"}]})
        if meta.get("labels") is not None and not isinstance(meta["labels"], dict):
            raise APIError(422, "Invalid", "metadata.labels must be a map")
        obj["apiVersion"] = f"{group}/{version}" if group else version
        obj["kind"] = self.kind_for(resource, obj)

    def spec_part(self, obj):
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    def store_write(self, ctx, old, new, etype):
        """Common tail of every write: system metadata, generation, managedFields, rv, event. Lock held."""
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        key = (new["metadata"].get("namespace", ""), new["metadata"]["name"])
        if old is not None:
            for f in ("uid", "creationTimestamp", "deletionTimestamp"):
                if f in old["metadata"]:
                    new["metadata"][f] = old["metadata"][f]
                else:
                    new["metadata"].pop(f, None)
            gen = old["metadata"].get("generation", 1)
            if self.spec_part(old) != self.spec_part(new):
                gen += 1
            new["metadata"]["generation"] = gen
            new["metadata"].pop("managedFields", None)
            old_cmp = {k: v for k, v in old.items()}
            old_cmp = copy.deepcopy(old_cmp)
            old_cmp["metadata"].pop("managedFields", None)
            old_cmp["metadata"].pop("resourceVersion", None)
            new_cmp = copy.deepcopy(new)
            new_cmp["metadata"].pop("resourceVersion", None)
            owners_changed = getattr(self, "_owners_changed", False)
            if old_cmp == new_cmp and not owners_changed:
                return copy.deepcopy(old)   # no-op write: no new resourceVersion, no event
        else:
            new["metadata"]["uid"] = str(uuid.uuid4())
            new["metadata"]["creationTimestamp"] = now_rfc3339()
            new["metadata"]["generation"] = 1
        new["metadata"]["resourceVersion"] = str(st.next_rv())
        self.attach_managed_fields(group, resource, new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self.remove_object(group, resource, key, new, None)
        st.table(group, resource)[key] = new
        st.record(group, resource, etype, new)
        return copy.deepcopy(new)

    def attach_managed_fields(self, group, resource, obj):
        st = self.state.store
        okey = (group, resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        owners = st.ownership.get(okey, {})
        mf = []
        for (manager, operation, subresource), paths in sorted(owners.items()):
            if not paths:
                continue
            e = {"manager": manager, "operation": operation, "apiVersion": obj["apiVersion"], "time": now_rfc3339(),
                 "fieldsType": "FieldsV1", "fieldsV1": fields_v1(paths)}
            if subresource:
                e["subresource"] = subresource
            mf.append(e)
        if mf:
            obj["metadata"]["managedFields"] = mf
        else:
            obj["metadata"].pop("managedFields", None)

    def take_ownership(self, okey, manager_key, paths, changed_only_from=None):
        """An Update-style write: `manager_key` owns `paths`; other managers lose them."""
        st = self.state.store
        owners = st.ownership.setdefault(okey, {})
        for mk, p in owners.items():
            if mk != manager_key:
                p -= paths
        owners.setdefault(manager_key, set()).update(paths)
        for mk in [mk for mk, p in owners.items() if not p]:
            del owners[mk]

    def changed_paths(self, old, new, part):
        old_paths = owned_paths(old, part) if old else set()
        new_paths = owned_paths(new, part)
        changed = set()
        for p in new_paths:
            if get_path(old or {}, p) != get_path(new, p):
                changed.add(p)
        return changed, old_paths - new_paths

    def has_status(self, resource):
        return resource in self.state.store.status_resources

    # CREATE
    def create(self, ctx, query, obj):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            obj["metadata"] = meta
        self.check_meta(ctx, obj)
        for f in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "deletionTimestamp"):
            obj["metadata"].pop(f, None)
        if self.has_status(resource):
            obj.pop("status", None)
        with st.cond:
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if key in st.table(group, resource):
                raise APIError(409, "AlreadyExists", f'{qualified(group, resource)} "{key[1]}" already exists',
                               {"name": key[1], "group": group, "kind": resource})
            okey = (group, resource, key[0], key[1])
            st.ownership[okey] = {}
            self.take_ownership(okey, (self.manager_name(query), "Update", ""), owned_paths(obj, "main"))
            out = self.store_write(ctx, None, obj, "ADDED")
        self.send_json(201, out)

    def load(self, ctx):
        group, version, resource, ns, name, sub = ctx
        obj = self.state.store.table(group, resource).get((ns or "", name))
        if obj is None:
            raise self.not_found(group, resource, name)
        return copy.deepcopy(obj)

    def conflict(self, group, resource, name):
        return APIError(409, "Conflict",
                        f'Operation cannot be fulfilled on {qualified(group, resource)} "{name}": the object has been '
                        f"modified; please apply your changes to the latest version and try again",
                        {"name": name, "group": group, "kind": resource})

    def finish_update(self, ctx, query, old, new, default_manager):
        """Applies status-subresource rules, ownership of changed fields and stores. Lock held."""
        group, version, resource, ns, name, sub = ctx
        if sub == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
            part = "status"
        else:
            if self.has_status(resource):
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
                part = "main-no-status"
            else:
                part = "main"
        okey = (group, resource, ns or "", name)
        changed, removed = self.changed_paths(old, new, part)
        self.state.store.ownership.setdefault(okey, {})
        self.take_ownership(okey, (self.manager_name(query, default_manager), "Update", sub or ""), changed)
        owners = self.state.store.ownership[okey]
        for mk in list(owners):
            owners[mk] -= removed
            if not owners[mk]:
                del owners[mk]
        return self.store_write(ctx, old, new, "MODIFIED")

    # PUT
    def update(self, ctx, query, obj):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        self.check_meta(ctx, obj)
        with st.cond:
            old = self.load(ctx)
            rv = obj["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise self.conflict(group, resource, name)
            out = self.finish_update(ctx, query, old, obj, "unknown")
        self.send_json(200, out)

    # PATCH merge
    def merge(self, ctx, query, patch):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        with st.cond:
            old = self.load(ctx)
            rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch.get("metadata"), dict) else None
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise self.conflict(group, resource, name)
            new = merge_patch(old, patch)
            if not isinstance(new.get("metadata"), dict):
                raise APIError(422, "Invalid", "metadata must be an object")
            self.check_meta(ctx, new)
            out = self.finish_update(ctx, query, old, new, "unknown")
        self.send_json(200, out)

    # PATCH apply
    def apply(self, ctx, query, applied):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        manager = query.get("fieldManager")
        if not manager:
            raise APIError(400, "BadRequest", "PATCH with apply patch requires a fieldManager query parameter")
        force = query.get("force") in ("1", "true")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise APIError(400, "BadRequest", "apply patch must set apiVersion and kind")
        want_api = f"{group}/{version}" if group else version
        if applied["apiVersion"] != want_api:
            raise APIError(400, "BadRequest", f"apiVersion {applied['apiVersion']} does not match {want_api}")
        self.check_meta(ctx, applied)
        if sub == "status":
            part = "status"
        elif self.has_status(resource):
            part = "main-no-status"
        else:
            part = "main"
        applied_paths = owned_paths(applied, part)
        manager_key = (manager, "Apply", sub or "")
        with st.cond:
            key = (ns or "", name)
            okey = (group, resource, key[0], key[1])
            old = st.table(group, resource).get(key)
            if old is None:
                if sub == "status":
                    raise self.not_found(group, resource, name)
                new = {"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": {}}
                for k, v in applied.items():
                    if k == "metadata":
                        for mk, mv in v.items():
                            if mk not in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
                                new["metadata"][mk] = copy.deepcopy(mv)
                    elif k not in ("apiVersion", "kind") and not (k == "status" and part != "main"):
                        new[k] = copy.deepcopy(v)
                st.ownership[okey] = {manager_key: set(applied_paths)}
                out = self.store_write(ctx, None, new, "ADDED")
                return self.send_json(201, out)
            old = copy.deepcopy(old)
            arv = applied["metadata"].get("resourceVersion")
            if arv and arv != old["metadata"]["resourceVersion"]:
                raise self.conflict(group, resource, name)
            owners = copy.deepcopy(st.ownership.get(okey, {}))
            conflicts = []
            for p in sorted(applied_paths):
                for mk, paths in sorted(owners.items()):
                    if mk == manager_key or p not in paths:
                        continue
                    if get_path(old, p) != get_path(applied, p):
                        conflicts.append((mk, p))
            if conflicts and not force:
                causes = [{"type": "FieldManagerConflict",
                           "message": f'conflict with "{mk[0]}"' + (f' with subresource "{mk[2]}"' if mk[2] else "")
                                      + f": {path_str(p)}",
                           "field": path_str(p)} for mk, p in conflicts]
                lines = "\n".join(f'- {c["message"]}' for c in causes)
                raise APIError(409, "Conflict",
                               f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) != 1 else ''}: {lines}",
                               {"causes": causes})
            for mk, p in conflicts:
                owners[mk].discard(p)
            previously = owners.get(manager_key, set())
            new = copy.deepcopy(old)
            for p in previously - applied_paths:
                if any(p in paths for mk, paths in owners.items() if mk != manager_key):
                    continue
                # An empty map applied before (e.g. `spec: {}`) that now has children is owned through them.
                ok, cur = get_path(new, p)
                if ok and isinstance(cur, dict) and cur:
                    continue
                if any(q[:len(p)] == p for q in applied_paths):
                    continue
                remove_path(new, p)
            for p in applied_paths:
                ok, v = get_path(applied, p)
                set_path(new, p, v)
            # Other managers keep only fields not now owned by this applier? No: shared ownership is allowed when
            # values agree; they keep them.
            owners[manager_key] = set(applied_paths)
            owners = {mk: p for mk, p in owners.items() if p}
            self._owners_changed = owners != st.ownership.get(okey, {})
            st.ownership[okey] = owners
            try:
                out = self.store_write(ctx, old, new, "MODIFIED")
            finally:
                self._owners_changed = False
        self.send_json(200, out)

    # DELETE
    def delete(self, ctx, query, body):
        group, version, resource, ns, name, sub = ctx
        st = self.state.store
        policy = query.get("propagationPolicy")
        if body:
            try:
                opts = json.loads(body)
                policy = opts.get("propagationPolicy") or policy
            except ValueError:
                raise APIError(400, "BadRequest", "invalid DeleteOptions")
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise APIError(400, "BadRequest", f"invalid propagationPolicy {policy}")
        with st.cond:
            key = (ns or "", name)
            obj = st.table(group, resource).get(key)
            if obj is None:
                raise self.not_found(group, resource, name)
            if obj["metadata"].get("finalizers"):
                obj = copy.deepcopy(obj)
                if not obj["metadata"].get("deletionTimestamp"):
                    obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                    obj["metadata"]["resourceVersion"] = str(st.next_rv())
                    st.table(group, resource)[key] = obj
                    st.record(group, resource, "MODIFIED", obj)
                return self.send_json(202, obj)
            out = self.remove_object(group, resource, key, copy.deepcopy(obj), policy)
        self.send_json(200, out)

    def remove_object(self, group, resource, key, obj, policy):
        """Deletes and garbage-collects dependents (immediately; Orphan strips the ownerReference). Lock held."""
        st = self.state.store
        st.table(group, resource).pop(key, None)
        st.ownership.pop((group, resource, key[0], key[1]), None)
        obj["metadata"]["resourceVersion"] = str(st.next_rv())
        st.record(group, resource, "DELETED", obj)
        uid = obj["metadata"].get("uid")
        for (g, r), table in list(st.objects.items()):
            for k, dep in list(table.items()):
                refs = dep["metadata"].get("ownerReferences") or []
                if not any(ref.get("uid") == uid for ref in refs):
                    continue
                if policy == "Orphan":
                    dep = copy.deepcopy(dep)
                    dep["metadata"]["ownerReferences"] = [ref for ref in refs if ref.get("uid") != uid]
                    if not dep["metadata"]["ownerReferences"]:
                        del dep["metadata"]["ownerReferences"]
                    dep["metadata"]["resourceVersion"] = str(st.next_rv())
                    table[k] = dep
                    st.record(g, r, "MODIFIED", dep)
                elif len(refs) == 1 or all(ref.get("uid") == uid for ref in refs):
                    self.remove_object(g, r, k, copy.deepcopy(dep), policy)
                else:
                    dep = copy.deepcopy(dep)
                    dep["metadata"]["ownerReferences"] = [ref for ref in refs if ref.get("uid") != uid]
                    dep["metadata"]["resourceVersion"] = str(st.next_rv())
                    table[k] = dep
                    st.record(g, r, "MODIFIED", dep)
        return obj


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_context = None

    def finish_request(self, request, client_address):
        # TLS handshakes happen on the connection's thread so a stuck client cannot block accept().
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                try:
                    request.close()
                except OSError:
                    pass
                return
        self.RequestHandlerClass(request, client_address, self)


def watch_parent(parent):
    # Tests start us as a child process; if the test runner dies without stopping us, exit instead of lingering.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main():
    # Spawners (e.g. Foundation's Process) may hand us a blocked signal mask; make SIGTERM/SIGINT work.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="accept client certificates signed by this CA as authenticated")
    ap.add_argument("--token", action="append", help="accepted bearer token (repeatable); none = no auth")
    ap.add_argument("--history", type=int, default=1000, help="watch replay window (events)")
    ap.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between BOOKMARK events")
    ap.add_argument("--status-resource", action="append", help="extra resource with a status subresource")
    args = ap.parse_args()

    Handler.state = State(args)
    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(args.client_ca)
        server.ssl_context = ctx
    port = server.server_address[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"port": port, "pid": os.getpid()}, f)
        os.rename(tmp, args.ready_file)
    print(f"READY port={port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
