"""OpenTelemetry traces from the real gateway and operator binaries, received by a local OTLP/HTTP receiver and decoded with the
official protobuf definitions (opentelemetry-proto): spans for the request, signature verification, the backend
exchange and the cipher, in the client's trace; the backend (moto, behind a recording proxy) gets the gateway's
span as its parent; export happens off the request path and a full queue drops and counts spans."""

from __future__ import annotations

import http.client
import http.server
import re
import threading
from dataclasses import dataclass, field

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import s3gw
from conftest import ROOT, operator_bin

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: every POST body decoded as ExportTraceServiceRequest."""

    requests: list = field(default_factory=list)
    content_types: list = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: _Server | None = None

    def start(self) -> str:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                receiver.gate.wait(60)  # a test can hold the exporter here
                with receiver.lock:
                    receiver.content_types.append((self.path, self.headers["Content-Type"]))
                    receiver.requests.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.gate.set()
        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list:
        with self.lock:
            return [(rs.resource, span) for r in self.requests for rs in r.resource_spans
                    for ss in rs.scope_spans for span in ss.spans]


def attributes(kvs) -> dict:
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def traced_client(gw, traceparent: str | None, tracestate: str | None = None):
    client = gw.client()

    def add_headers(request, **_):
        if traceparent:
            request.headers["traceparent"] = traceparent
        if tracestate:
            request.headers["tracestate"] = tracestate
    client.meta.events.register("before-sign.s3.*", add_headers)
    return client


@pytest.fixture
def stack(tmp_path):
    backend = s3gw.MotoBackend.start(tmp_path / "moto")
    proxy = s3gw.RecordingProxy(backend.endpoint)
    receiver = Receiver()
    started = []
    try:
        proxy_url = proxy.start()
        receiver_url = receiver.start()

        def start(**env):
            extra = {"GATEWAY_PASSTHROUGH": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url,
                     "OTEL_BSP_SCHEDULE_DELAY": "100"}
            extra.update(env)
            gw = s3gw.start_gateway(proxy_url, backend.access_key, backend.secret_key,
                                    tmp_path / f"gw{len(started)}", extra_env=extra)
            started.append(gw)
            return gw
        yield backend, proxy, receiver, start
    finally:
        for gw in started:
            gw.terminate()
        receiver.stop()
        proxy.stop()
        backend.stop()


def test_request_spans_reach_the_collector_in_the_clients_trace(stack):
    backend, proxy, receiver, start = stack
    gw = start()
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    client = traced_client(gw, parent, "vendor=abc")
    with s3gw.temporary_bucket(gw.client(), "trace") as bucket:
        client.put_object(Bucket=bucket, Key="traced", Body=b"x" * 100_000)
        assert client.get_object(Bucket=bucket, Key="traced")["Body"].read() == b"x" * 100_000
    assert gw.terminate() == 0  # SIGTERM flushes the queue

    spans = receiver.spans()
    assert receiver.content_types and all(ct == ("/v1/traces", "application/x-protobuf")
                                          for ct in receiver.content_types)
    resource = attributes(spans[0][0].attributes)
    assert resource["service.name"] == "s3-encryption-gateway"
    version = re.search(r'version = "([^"]+)"', (ROOT / "Sources/Shared/BuildInfo.swift").read_text()).group(1)
    assert resource["service.version"] == version

    ours = [s for _, s in spans if s.trace_id.hex() == CLIENT_TRACE]
    by_name = {}
    for s in ours:
        by_name.setdefault(s.name, []).append(s)
    put = by_name["S3.PutObject"][0]
    get = by_name["S3.GetObject"][0]
    for server in (put, get):
        assert server.kind == server.SPAN_KIND_SERVER
        assert server.parent_span_id.hex() == CLIENT_SPAN
        assert server.trace_state == "vendor=abc"
        assert server.end_time_unix_nano >= server.start_time_unix_nano > 0
    put_attributes = attributes(put.attributes)
    assert put_attributes["aws.s3.bucket"] == bucket and put_attributes["aws.s3.key"] == "traced"
    assert put_attributes["http.response.status_code"] == 200 and put_attributes["rpc.method"] == "PutObject"

    def children(server, name):
        return [s for s in by_name.get(name, []) if s.parent_span_id == server.span_id]
    assert len(children(put, "authenticate")) == 1
    assert len(children(put, "encrypt")) == 1 and len(children(get, "decrypt")) == 1
    (put_backend,) = children(put, "PUT")
    assert put_backend.kind == put_backend.SPAN_KIND_CLIENT
    assert attributes(put_backend.attributes)["http.response.status_code"] == 200

    # The backend saw the gateway's client span as its parent, in the client's trace, with the client's tracestate.
    puts = [(r.headers.get("traceparent"), r.headers.get("tracestate")) for r in proxy.seen()
            if r.method == "PUT" and r.path.endswith("/traced")]
    assert puts == [(f"00-{CLIENT_TRACE}-{put_backend.span_id.hex()}-01", "vendor=abc")]

    # The request's log line names its trace and span.
    request_lines = [r for r in s3gw.parse_json_log(gw.log_text()) if r.get("msg") == "request"
                     and r.get("operation") == "PutObject"]
    assert request_lines[-1]["trace_id"] == CLIENT_TRACE and request_lines[-1]["span_id"] == put.span_id.hex()


def test_untraced_and_unsampled_requests(stack):
    backend, proxy, receiver, start = stack
    gw = start()
    unsampled_trace = "0af7651916cd43dd8448eb211c80319c"
    with s3gw.temporary_bucket(gw.client(), "trace") as bucket:
        gw.client().put_object(Bucket=bucket, Key="fresh", Body=b"new trace")
        traced_client(gw, f"00-{unsampled_trace}-b7ad6b7169203331-00").put_object(Bucket=bucket, Key="quiet",
                                                                                   Body=b"not sampled")
    assert gw.terminate() == 0
    spans = [s for _, s in receiver.spans()]
    fresh = [s for s in spans if s.name == "S3.PutObject" and attributes(s.attributes).get("aws.s3.key") == "fresh"]
    assert len(fresh) == 1 and fresh[0].parent_span_id == b"", "a request without traceparent starts a trace"
    assert not [s for s in spans if s.trace_id.hex() == unsampled_trace], "the parent said: not sampled"
    # Not recorded, but the context still reaches the backend with the sampled flag off.
    quiet = [r.headers.get("traceparent") for r in proxy.seen() if r.method == "PUT" and r.path.endswith("/quiet")]
    assert len(quiet) == 1 and quiet[0].startswith(f"00-{unsampled_trace}-") and quiet[0].endswith("-00")


def test_export_is_off_the_request_path_and_a_full_queue_drops_and_counts(stack):
    backend, proxy, receiver, start = stack
    receiver.gate.clear()  # the receiver holds the first export until the test releases it
    gw = start(OTEL_BSP_MAX_QUEUE_SIZE="4", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4", OTEL_BSP_SCHEDULE_DELAY="60000")
    with s3gw.temporary_bucket(gw.client(), "trace") as bucket:
        for i in range(10):  # every request still completes while the exporter is stuck
            gw.client().put_object(Bucket=bucket, Key=f"k{i}", Body=b"v")
        assert receiver.arrived.wait(30), "no export started"
        _, _, metrics = s3gw.http_request("GET", gw.endpoint + "/metrics")
        dropped = re.search(rb'^tracing_spans_dropped_total\{reason="queue_full"\} (\d+)', metrics, re.M)
        assert dropped and int(dropped.group(1)) > 0, metrics.decode()
        receiver.gate.set()
    assert gw.terminate() == 0
    assert receiver.spans(), "the held batch was delivered once released"


def test_bad_tracing_settings_stop_the_gateway_with_exit_2(tmp_path):
    import subprocess
    env = s3gw.gateway_env("http://127.0.0.1:9", "a", "b", f"127.0.0.1:{s3gw.free_port()}", "c", "d",
                           {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    result = subprocess.run([str(s3gw.gateway_bin())], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in result.stderr and "http/protobuf" in result.stderr


def test_the_operator_exports_a_span_per_reconcile(tmp_path):
    """The operator (on the project's test API server) reads OTEL_* and exports one root span per reconcile."""
    import json
    import os
    import subprocess
    import time

    ready = tmp_path / "ready.json"
    api = subprocess.Popen(["python3", str(ROOT / "Tests/KubeAPIServer/kube_test_apiserver.py"), "--port", "0",
                            "--ready-file", str(ready), "--token", "t1"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    receiver = Receiver()
    operator = None
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert api.poll() is None and time.monotonic() < deadline, "test API server did not start"
            time.sleep(0.05)
        server = f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
        status, _, body = s3gw.http_request(
            "POST", server + "/apis/s3gateway.dev/v1alpha1/namespaces/apps/encryptiongateways",
            headers={"Authorization": "Bearer t1", "Content-Type": "application/json"},
            body=json.dumps({"apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
                             "metadata": {"name": "traced", "namespace": "apps"}, "spec": {}}).encode())
        assert status == 201, body
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(f"apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
                              "users: [{name: u, user: {token: t1}}]\n"
                              "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.start(), OTEL_BSP_SCHEDULE_DELAY="100")
        operator = subprocess.Popen([str(operator_bin()), "--kubeconfig", str(kubeconfig), "--leader-elect=false",
                                     "--metrics-bind-address=0", f"--health-probe-bind-address=127.0.0.1:{s3gw.free_port()}"],
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)

        def reconciles():
            return [(resource, span) for resource, span in receiver.spans() if span.name == "reconcile"
                    and attributes(span.attributes).get("s3gateway.name") == "traced"]

        deadline = time.monotonic() + 60
        while not reconciles():
            assert operator.poll() is None, f"operator exited with {operator.returncode}"
            assert time.monotonic() < deadline, f"no reconcile span; got {[s.name for _, s in receiver.spans()]}"
            time.sleep(0.1)
        resource, span = reconciles()[0]
        assert attributes(resource.attributes)["service.name"] == "encryption-gateway-operator"
        attrs = attributes(span.attributes)
        assert attrs["controller"] == "encryptiongateway" and attrs["k8s.namespace.name"] == "apps"
        assert attrs["reconcile.result"] in ("success", "error", "requeue_after")
        assert span.parent_span_id == b"", "a reconcile starts its own trace"
        operator.terminate()
        assert operator.wait(30) == 0
    finally:
        if operator is not None and operator.poll() is None:
            operator.kill()
            operator.wait(10)
        if receiver.server is not None:
            receiver.stop()
        api.terminate()
        api.wait(10)


def test_bad_tracing_settings_stop_the_operator_with_exit_2():
    import os
    import subprocess
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318", OTEL_TRACES_SAMPLER="sometimes")
    result = subprocess.run([str(operator_bin()), "--kubeconfig", "/nonexistent"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "OTEL_TRACES_SAMPLER" in result.stderr
