"""The container images, proven without a Docker engine.

Each Dockerfile's build command is run as written, its runtime stage replayed in a bookworm root filesystem,
and the binary run there as the Dockerfile's USER (65534) on a read-only root with no capabilities
(scripts/imagetest.py). The gateway serves /health and a PUT/GET round trip against moto and passes its own
HEALTHCHECK; the operator prints its version, serves /healthz and syncs against an API server over TLS.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import imagetest
import s3gw
from conftest import ROOT
from dockerfile import Dockerfile, DockerfileError

# Packages a runtime stage may name that no binary links: CA certificates (https backends, the API server) and
# time zones (Foundation's TimeZone). Every other package must provide a library the binary needs.
DATA_PACKAGES = {"ca-certificates", "tzdata"}


def swift_version() -> str:
    out = subprocess.run(["swift", "--version"], capture_output=True, text=True, check=True)
    return re.search(r"Swift version (\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr).group(1)


def build_info_version() -> str:
    text = (ROOT / "Sources/Shared/BuildInfo.swift").read_text()
    return re.search(r'static let version = "([^"]+)"', text).group(1)


# ------------------------------------------------------------------------------------------------------------------
# The Dockerfiles themselves


def test_build_stage_uses_this_toolchain_and_a_static_swift_runtime(dockerfile):
    build = dockerfile.stages[0]
    assert len(dockerfile.stages) == 2, "one build stage, one runtime stage"
    m = re.fullmatch(r"swift:(\d+\.\d+(?:\.\d+)?)-bookworm", build.base)
    assert m, f"build stage must use an official swift:X.Y-bookworm image, not {build.base}"
    # The tests build with the machine's toolchain; the image must be built by the same release.
    assert m.group(1) == swift_version(), f"{dockerfile.path.name} builds with Swift {m.group(1)}, this machine has " \
                                          f"{swift_version()}: keep SWIFT_IMAGE in step with the toolchain"
    command = dockerfile.swift_build_command()
    assert "--static-swift-stdlib" in command and command[command.index("-c") + 1] == "release"


def test_layers_are_ordered_for_the_build_cache(dockerfile):
    copies = [i.text.split()[0] for i in dockerfile.stages[0].all("COPY")]
    assert copies == ["Package.swift", "Sources", "Tests"], "manifest, then sources, then tests"
    final = [i.keyword for i in dockerfile.final.instructions]
    # Build arguments and labels change with every release; they come after the package and binary layers.
    assert final.index("RUN") < final.index("COPY") < final.index("ARG") < final.index("LABEL")


def test_runtime_stage_runs_as_nobody_with_a_self_contained_healthcheck(dockerfile):
    assert dockerfile.final.base == "debian:bookworm-slim"
    assert dockerfile.user() == (65534, 65534)
    ports = dockerfile.exposed_ports()
    options, command = dockerfile.healthcheck()
    entrypoint = dockerfile.entrypoint()
    (_, _, destination), = dockerfile.runtime_copies()
    assert entrypoint == [destination]
    assert command == [destination, "healthcheck"], "HEALTHCHECK runs the binary itself (no curl/wget in the image)"
    assert {"interval", "timeout", "retries", "start-period"} <= set(options)
    if dockerfile.path.name == "Dockerfile.proxy":
        assert ports == [8080] and dockerfile.env()["LISTEN_ADDR"] == ":8080"
    else:
        assert ports == [8080, 8081]


def test_oci_labels_come_from_build_arguments(dockerfile):
    labels = dockerfile.labels()
    for key in ("title", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"missing label {key}"
    for key, arg in (("source", "SOURCE"), ("version", "VERSION"), ("created", "CREATED"), ("revision", "REVISION")):
        assert labels.get(f"org.opencontainers.image.{key}") == "${" + arg + "}"
        assert dockerfile.arg_default(dockerfile.final, arg) is not None, f"ARG {arg} needs a default"
    assert dockerfile.arg_default(dockerfile.final, "VERSION") == build_info_version(), \
        "the VERSION build argument defaults to BuildInfo.version"


def test_reader_refuses_what_it_does_not_understand():
    with pytest.raises(DockerfileError, match="VOLUME"):
        Dockerfile.parse("FROM debian:bookworm-slim\nVOLUME /data\n")
    with pytest.raises(DockerfileError, match="exec form"):
        Dockerfile.parse("FROM debian:bookworm-slim\nENTRYPOINT /usr/local/bin/x\n").entrypoint()
    with pytest.raises(DockerfileError, match="numeric"):
        Dockerfile.parse("FROM debian:bookworm-slim\nUSER nobody\n").user()


def test_dockerignore_follows_docker_semantics():
    rules = imagetest.dockerignore_rules(".build/\n**/__pycache__\n*.partial\nTests/Integration\n!Tests/Integration/keep\n")
    assert imagetest.ignored(".build/release/x", rules)
    assert imagetest.ignored("a/b/__pycache__/c.pyc", rules)
    assert imagetest.ignored("x.partial", rules) and not imagetest.ignored("a/x.partial", rules)
    assert imagetest.ignored("Tests/Integration/conftest.py", rules)
    assert not imagetest.ignored("Tests/Integration/keep", rules)
    assert not imagetest.ignored("Sources/Proxy/main.swift", rules)


def test_a_staging_tree_left_closed_is_opened_for_the_container_user():
    """A staging tree left by an interrupted run (or made under a strict umask) must not stop the containers,
    which run as 65534 and reach the binary through it."""
    leftover = imagetest.STAGING / "closed-by-an-interrupted-run"
    binary_dir = leftover / "bin"
    binary_dir.mkdir(parents=True, exist_ok=True)
    (binary_dir / "binary").write_text("#!/bin/sh\n")
    os.chmod(binary_dir / "binary", 0o755)
    try:
        os.chmod(binary_dir, 0o700)
        os.chmod(leftover, 0o750)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                     "test", "-r", str(binary_dir / "binary")]
        assert subprocess.run(as_nobody).returncode != 0
        imagetest._open_to_container_user(binary_dir)
        assert subprocess.run(as_nobody).returncode == 0
    finally:
        subprocess.run(["rm", "-rf", str(leftover)], check=True)


# ------------------------------------------------------------------------------------------------------------------
# The root filesystems


def test_rootfs_packages_are_the_dockerfile_list(image):
    listed = image.dockerfile.runtime_packages()
    assert image.rootfs.packages == listed, "the root filesystem was made from another package list"
    missing = set(listed) - image.installed_packages()
    assert not missing, f"not installed in the root filesystem: {sorted(missing)}"


def test_runtime_packages_are_exactly_the_linked_libraries(image):
    """Every shared library the binary needs comes from a listed package (or the base image), and every listed
    package but the data ones provides one of them."""
    needed = subprocess.run(["readelf", "-d", str(image.binary)], capture_output=True, text=True, check=True).stdout
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed)
    assert sonames, "readelf shows no NEEDED entries"
    ldd = image.run([], entrypoint=["ldd", image.destination])
    assert ldd.returncode == 0, ldd.stderr
    not_found = [line.strip() for line in ldd.stdout.splitlines() if "not found" in line]
    assert not not_found, f"libraries missing in the image: {not_found}: add their packages to " \
                          f"{image.dockerfile.path.name}'s apt-get install"
    base = imagetest.base_rootfs()
    base_packages = set(subprocess.run(["dpkg-query", f"--admindir={base}/var/lib/dpkg", "-W", "-f", "${Package}\n"],
                                       capture_output=True, text=True, check=True).stdout.split())
    owners = set()
    for soname in sonames:
        out = subprocess.run(["dpkg-query", f"--admindir={image.rootfs.path}/var/lib/dpkg", "-S", f"*/{soname}"],
                             capture_output=True, text=True)
        assert out.returncode == 0, f"no package in the image owns {soname}"
        owners |= {line.split(":")[0] for line in out.stdout.splitlines()}
    listed = set(image.dockerfile.runtime_packages()) - DATA_PACKAGES
    assert owners - base_packages == listed, \
        f"{image.dockerfile.path.name} installs {sorted(listed)}; the binary links libraries of " \
        f"{sorted(owners - base_packages)} beyond the base image"


def test_a_library_missing_from_the_image_stops_the_binary(proxy_image):
    """What the ldd check above guards against: with libxml2 gone, the gateway does not start at all."""
    hidden = [f for f in proxy_image.package_files("libxml2") if re.search(r"/libxml2\.so\.2$", f)]
    assert hidden, "libxml2 ships no libxml2.so.2?"
    result = proxy_image.run(["--version"], hide=hidden)
    assert result.returncode != 0
    assert "error while loading shared libraries: libxml2.so.2" in result.stderr


def test_container_is_nobody_on_a_read_only_root_without_capabilities(proxy_image):
    script = "id -u; id -g; grep CapEff /proc/self/status; touch /probe 2>&1; touch /tmp/probe 2>&1; true"
    result = proxy_image.run([script], entrypoint=["/bin/sh", "-c"])
    lines = result.stdout.splitlines()
    assert lines[:2] == ["65534", "65534"]
    assert lines[2].split() == ["CapEff:", "0000000000000000"]
    assert all("Read-only file system" in line for line in lines[3:5]), result.stdout


# ------------------------------------------------------------------------------------------------------------------
# The gateway image


class Container:
    """One running container, stopped the way Docker stops one: SIGTERM to the entrypoint process."""

    def __init__(self, image: imagetest.Image, log: Path, **kwargs):
        self.image = image
        self.log = log
        self._out = open(log, "wb")
        self.proc = image.start(stdout=self._out, stderr=subprocess.STDOUT, **kwargs)

    def entrypoint_pid(self) -> int | None:
        """The entrypoint process, found below setpriv/bwrap by its command line."""
        pending = [self.proc.pid]
        while pending:
            pid = pending.pop()
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            if argv0 == self.image.destination:
                return pid
            pending += [int(c) for c in children]
        return None

    def stop(self, timeout: float = 40) -> int:
        pid = self.entrypoint_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"container did not exit within {timeout:.0f}s of SIGTERM")
        finally:
            self._out.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_http(url: str, container: Container, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if container.proc.poll() is not None:
            raise AssertionError(f"container exited with {container.proc.returncode}:\n{container.text()}")
        try:
            status = s3gw.http_request("GET", url, timeout=2)[0]
            if status == 200:
                return status
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not 200 within {timeout:.0f}s (last {status}):\n{container.text()}")


def test_gateway_image_serves_health_and_a_put_get_round_trip(proxy_image, moto, tmp_root):
    port = s3gw.free_port()
    access, secret = "IMAGETESTACCESS", "image-test-secret-key-0123456789"
    env = {"LISTEN_ADDR": f"127.0.0.1:{port}", "BACKEND_ENDPOINT": moto.endpoint, "BACKEND_ACCESS_KEY": moto.access_key,
           "BACKEND_SECRET_KEY": moto.secret_key, "GATEWAY_ACCESS_KEY": access, "GATEWAY_SECRET_KEY": secret,
           "ENCRYPTION_PASSWORD": "image-test-password-0123456789"}
    container = Container(proxy_image, tmp_root / "gateway.log", env=env)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/health", container)
        wait_http(endpoint + "/ready", container)

        health = proxy_image.healthcheck(env={"LISTEN_ADDR": env["LISTEN_ADDR"]})
        assert health.returncode == 0, health.stdout + health.stderr
        assert health.stdout.startswith("healthy:")
        # A pod with an outgoing proxy (the operator's spec.proxy) has the proxy variables set; the probe of the
        # gateway's own loopback port never goes through them (here: a proxy port nothing listens on).
        dead_proxy = f"http://127.0.0.1:{s3gw.free_port()}"
        proxied = proxy_image.healthcheck(env={"LISTEN_ADDR": env["LISTEN_ADDR"], "http_proxy": dead_proxy,
                                               "https_proxy": dead_proxy, "all_proxy": dead_proxy})
        assert proxied.returncode == 0 and proxied.stdout.startswith("healthy:"), proxied.stdout + proxied.stderr

        client = s3gw.make_client(endpoint, access, secret)
        body = os.urandom(300_000) + b"plaintext marker"
        with s3gw.temporary_bucket(client, "image") as bucket:
            client.put_object(Bucket=bucket, Key="object", Body=body)
            assert client.get_object(Bucket=bucket, Key="object")["Body"].read() == body
            stored = moto.client().get_object(Bucket=bucket, Key="object")["Body"].read()
            assert b"plaintext marker" not in stored and len(stored) > len(body), "the backend got plaintext"
    finally:
        code = container.stop()
    assert code == 0, f"gateway exited with {code} after SIGTERM:\n{container.text()}"
    logs = s3gw.parse_json_log("\n".join(l for l in container.text().splitlines() if l.startswith("{")))
    assert any(entry.get("msg") == "stopped" for entry in logs)
    # With nothing listening any more, the same HEALTHCHECK reports unhealthy.
    after = proxy_image.healthcheck(env={"LISTEN_ADDR": env["LISTEN_ADDR"]})
    assert after.returncode == 1 and after.stdout.startswith("unhealthy:")


# ------------------------------------------------------------------------------------------------------------------
# The operator image


def test_operator_image_prints_its_version(operator_image):
    result = operator_image.run(["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"encryption-gateway-operator {build_info_version()}"


@pytest.fixture
def api_server(tmp_root):
    """The project's test API server over TLS, with a kubeconfig that trusts its certificate."""
    workdir = tmp_root / f"apiserver-{time.monotonic_ns()}"
    workdir.mkdir()
    workdir.chmod(0o755)
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    ready = workdir / "ready.json"
    proc = subprocess.Popen(["python3", str(ROOT / "Tests/KubeAPIServer/kube_test_apiserver.py"), "--port", "0",
                             "--ready-file", str(ready), "--tls-cert", str(cert), "--tls-key", str(key),
                             "--token", "image-test-token"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "apiserver.log", "wb"))
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, (workdir / "apiserver.log").read_text()
        time.sleep(0.05)
    port = json.loads(ready.read_text())["port"]
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {base64.b64encode(cert.read_bytes()).decode()}
users:
- name: test
  user:
    token: image-test-token
contexts:
- name: test
  context: {{cluster: test, user: test, namespace: default}}
current-context: test
""")
    kubeconfig.chmod(0o644)
    yield kubeconfig
    proc.terminate()
    proc.wait(10)


def test_operator_image_serves_healthz_and_syncs_over_tls(operator_image, api_server, tmp_root):
    probes, metrics = s3gw.free_port(), s3gw.free_port()
    args = ["--kubeconfig", "/mnt/kubeconfig", "--leader-elect=false",
            f"--health-probe-bind-address=127.0.0.1:{probes}", f"--metrics-bind-address=127.0.0.1:{metrics}"]
    container = Container(operator_image, tmp_root / "operator.log", args=args,
                          binds=[(str(api_server.parent), "/mnt")])  # an existing mount point
    try:
        wait_http(f"http://127.0.0.1:{probes}/healthz", container)
        # /readyz turns 200 once the informers listed EncryptionGateways through libcurl and OpenSSL, with the
        # CA from a kubeconfig read by libyaml, all inside the image.
        wait_http(f"http://127.0.0.1:{probes}/readyz", container)
        # The HEALTHCHECK probes the default :8081; this container shares the host's loopback, so it binds a
        # free port and the command gets that address.
        health = operator_image.healthcheck([f"--health-probe-bind-address=127.0.0.1:{probes}"])
        assert health.returncode == 0, health.stdout + health.stderr
        status, _, body = s3gw.http_request("GET", f"http://127.0.0.1:{metrics}/metrics", timeout=5)
        assert status == 200 and b"rest_client_requests_total" in body
    finally:
        code = container.stop()
    assert code == 0, f"operator exited with {code} after SIGTERM:\n{container.text()}"
