"""config/monitoring: the PrometheusRule passes `promtool check rules` and its unit tests (promtool/), every
metric the rules and the Grafana dashboard name exists on the real /metrics of the gateway or the operator
(or comes from Prometheus or kube-state-metrics), and the ServiceMonitor reaches the operator's metrics port."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
import yaml

import s3gw
from conftest import ROOT, operator_bin, tool

MONITORING = ROOT / "config/monitoring"
# Series the alerts need from outside the project: Prometheus' own scrape health.
EXTERNAL = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, label matchers, ranges and grouping lists removed;
    a name followed by `(` is a function or aggregation)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def exposed_names(text: str) -> set[str]:
    """Sample names a /metrics page can carry, from its # TYPE lines (histograms add _bucket, _sum, _count)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind in ("histogram", "summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def rules() -> dict:
    return yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]


def dashboard() -> dict:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_promtool_checks_the_rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules()))
    result = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_promtool_unit_tests_fire_each_alert(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules()))
    tests = sorted((ROOT / "Tests/Shipping/promtool").glob("*.yaml"))
    for test in tests:
        shutil.copy(test, tmp_path / test.name)
    result = subprocess.run([tool("promtool"), "test", "rules", *[t.name for t in tests]], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\S+)", "".join(t.read_text() for t in tests)))
    alerts = {r["alert"] for g in rules()["groups"] for r in g["rules"]}
    assert alerts == tested, f"alerts without a promtool case: {sorted(alerts - tested)}"


def test_metric_name_extraction():
    expr = 'histogram_quantile(0.99, sum by (le, operation) (rate(a_bucket{op!~"x|y", ns=~"$ns"}[5m]))) / ' \
           'on (ns) group_left() b_total > 2 and absent(up{job="j"} == 1)'
    assert metric_names(expr) == {"a_bucket", "b_total", "up"}


@pytest.fixture(scope="module")
def real_metrics(tmp_path_factory) -> set[str]:
    """The names on the real /metrics of a running gateway (on moto) and a running operator."""
    tmp = tmp_path_factory.mktemp("metrics")
    backend = s3gw.MotoBackend.start(tmp / "moto")
    try:
        gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, tmp / "gw")
        try:
            status, _, body = s3gw.http_request("GET", gw.endpoint + "/metrics", timeout=5)
            assert status == 200
            names = exposed_names(body.decode())
        finally:
            gw.terminate()
    finally:
        backend.stop()
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(f"apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: "
                          f"'http://127.0.0.1:{s3gw.closed_port()}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\n"
                          "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")
    port = s3gw.free_port()
    proc = subprocess.Popen([str(operator_bin()), "--kubeconfig", str(kubeconfig), "--leader-elect=false",
                             f"--metrics-bind-address=127.0.0.1:{port}",
                             f"--health-probe-bind-address=127.0.0.1:{s3gw.free_port()}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = s3gw.http_request("GET", f"http://127.0.0.1:{port}/metrics", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "operator /metrics did not answer"
            time.sleep(0.1)
        operator = exposed_names(body.decode())
    finally:
        proc.terminate()
        proc.wait(30)
    assert "s3_gateway_requests_total" in names and "controller_runtime_reconcile_total" in operator
    return names | operator


def test_every_metric_the_alerts_name_exists(real_metrics):
    used = set()
    for group in rules()["groups"]:
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    assert "s3_gateway_tamper_detected_total" in used
    missing = used - real_metrics - EXTERNAL
    assert not missing, f"the alerts name metrics nobody exports: {sorted(missing)}"


def test_every_metric_the_dashboard_names_exists(real_metrics):
    used = set().union(*map(metric_names, dashboard_exprs()))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            used |= metric_names(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["query"]["query"]))
    missing = used - real_metrics
    assert not missing, f"the dashboard names metrics nobody exports: {sorted(missing)}"


def test_dashboard_is_well_formed():
    d = dashboard()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", f"panel {p['title']!r} pins a data source"
    assert {v["name"] for v in d["templating"]["list"]} >= {"datasource", "namespace", "gateway"}


def test_servicemonitor_reaches_the_operator_metrics_port():
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    service = yaml.safe_load((MONITORING / "operator-metrics-service.yaml").read_text())
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "config/default")], capture_output=True, text=True,
                              timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    deployment = next(d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def test_monitoring_kustomization_renders():
    out = subprocess.run(["kubectl", "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
    assert kinds == ["ConfigMap", "PrometheusRule", "Service", "ServiceMonitor"]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, re.M)}


def test_every_alert_has_a_runbook_section():
    doc = ROOT / "docs/monitoring.md"
    available = anchors(doc.read_text())
    for group in rules()["groups"]:
        for rule in group["rules"]:
            path, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert (ROOT / path) == doc and anchor in available, f"{rule['alert']}: no section #{anchor} in {path}"


def test_documented_log_pipeline_matches_the_operator_manifest():
    """The fluent-bit example selects the operator's log files by pod and container name and its records by the
    app.kubernetes.io/name label; both must be what config/default deploys."""
    text = (ROOT / "docs/monitoring.md").read_text()
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "config/default")], capture_output=True, text=True,
                              timeout=120)
    deployment = next(d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
    assert f"/var/log/containers/{deployment['metadata']['name']}-*_{container}-*.log" in text
    label = deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
    assert re.search(r"\^\([^)]*\b" + re.escape(label) + r"\b[^)]*\)\$", text)
