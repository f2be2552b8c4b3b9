"""Key providers end to end through the real gateway binary, with real key managers as processes
(Tests/Support/key_managers.py): PyKMIP (KMIP 1.4 over mutual TLS), moto's KMS with IAM authentication on,
and the Vault Transit double (no Vault server can be installed here). One moto S3 backend for the module.

Covered: a round trip per provider (stored ciphertext names its provider, CopyObject, offline `decrypt`);
one key-manager call for many PUTs and none for cached GETs; a key manager unreachable mid-run (503, `/ready`,
nothing stored, recovery); a revoked key (403); the per-bucket policy (plain buckets, named keys, reads by
metadata); the policy reloaded while requests are in flight; `rotate` from one provider to another and after a
key rotation in Vault.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import s3gw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Support"))

import key_managers  # noqa: E402

pytestmark = pytest.mark.gateway_only

PASSWORD = "key-providers-password-" + "p" * 12
PROVIDERS = ["raw", "password", "kmip", "aws-kms", "vault-transit"]


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: one backend and one of each key manager for the module


@pytest.fixture(scope="module")
def kdir(tmp_root) -> Path:
    path = tmp_root / "key-providers"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def kbackend(kdir):
    backend = s3gw.start_backend("moto", kdir / "backend")
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def raw_key_file(kdir) -> Path:
    path = kdir / "raw.key"
    path.write_text(secrets.token_hex(32) + "\n")
    return path


@pytest.fixture(scope="module")
def kmip(kdir):
    server = key_managers.PyKMIPServer(kdir / "kmip")
    server.default_uid = server.create_key()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kms(kdir):
    server = key_managers.MotoKMS(kdir / "kms")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vault(kdir):
    server = key_managers.VaultDouble(kdir / "vault")
    server.create_key("s3eg")
    server.gateway_token = server.token()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def provider_env(raw_key_file, kmip, kms, vault):
    """The settings of each provider as the gateway reads them."""
    def env(provider: str) -> dict[str, str]:
        base = {"ENCRYPTION_PASSWORD": "", "ENCRYPTION_KEY_PROVIDER": provider}
        if provider == "raw":
            base["ENCRYPTION_KEY_FILE"] = str(raw_key_file)
        elif provider == "password":
            base["ENCRYPTION_PASSWORD"] = PASSWORD
        elif provider == "kmip":
            base.update(kmip.gateway_env(kmip.default_uid))
        elif provider == "aws-kms":
            base.update(kms.gateway_env())
        else:
            base.update(vault.gateway_env("s3eg", vault.gateway_token))
        return base
    return env


@pytest.fixture
def gateways(kbackend, kdir, gateway_binary):
    """Starts gateways with given settings; stops them (and checks a clean exit) afterwards."""
    started: list[s3gw.Gateway] = []

    def start(env: dict[str, str], require_ready: bool = True) -> s3gw.Gateway:
        extra = {"GATEWAY_PASSTHROUGH": "false", "KEY_PROVIDER_TIMEOUT": "2s", **env}
        gw = s3gw.start_gateway(kbackend.endpoint, kbackend.access_key, kbackend.secret_key,
                                kdir / f"gw-{uuid.uuid4().hex[:6]}", binary=gateway_binary, extra_env=extra,
                                require_ready=require_ready, name="gateway")
        started.append(gw)
        return gw

    yield start
    for gw in started:
        print(f"--- {gw.log_path} (shown when the test failed)\n{gw.log_tail(40)}")
        assert gw.terminate() == 0, f"gateway exited uncleanly; log tail:\n{gw.log_tail()}"


def tool_env(kbackend, env: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("BACKEND_", "GATEWAY_", "ENCRYPTION_"))}
    out.update({"BACKEND_ENDPOINT": kbackend.endpoint, "BACKEND_REGION": s3gw.REGION,
                "BACKEND_ACCESS_KEY": kbackend.access_key, "BACKEND_SECRET_KEY": kbackend.secret_key})
    out.update({k: v for k, v in env.items() if v})
    return out


def run_tool(binary: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def metric(gw: s3gw.Gateway, name: str, **labels: str) -> float:
    """The value of one series of the gateway's /metrics (0 when absent)."""
    text = s3gw.http_request("GET", gw.endpoint + "/metrics")[2].decode()
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stored_metadata(kbackend, bucket: str, key: str) -> dict[str, str]:
    return kbackend.client().head_object(Bucket=bucket, Key=key)["Metadata"]


def error_code(exc) -> str:
    return exc.response["Error"]["Code"]


# ---------------------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("provider", PROVIDERS)
def test_round_trip_copy_and_offline_decrypt(provider, provider_env, gateways, kbackend, gateway_binary, tmp_path):
    env = provider_env(provider)
    gw = gateways(env)
    s3 = gw.client()
    with s3gw.temporary_bucket(s3, f"kp-{provider}") as bucket:
        small, large = os.urandom(1024), os.urandom(200_000)
        s3.put_object(Bucket=bucket, Key="small", Body=small)
        s3.put_object(Bucket=bucket, Key="large", Body=large)
        assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == small
        assert s3.get_object(Bucket=bucket, Key="large", Range="bytes=70000-70099")["Body"].read() == large[70000:70100]

        meta = stored_metadata(kbackend, bucket, "large")
        assert meta["s3eg-version"] == "2"
        assert meta["s3eg-provider"] == provider
        assert ("s3eg-ik" in meta) == (provider not in ("raw", "password"))
        stored = kbackend.client().get_object(Bucket=bucket, Key="large")["Body"].read()
        assert large[:4096] not in stored

        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "large"})
        assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == large

        out = tmp_path / "large.plain"
        result = run_tool(gateway_binary, ["decrypt", "--bucket", bucket, "--key", "large", "--output", str(out)],
                          tool_env(kbackend, env))
        assert result.returncode == 0, result.stderr.decode()
        assert out.read_bytes() == large

        if provider in ("raw", "password"):
            return
        # One key-manager call wrapped the bucket's intermediate key for every PUT above; reads were cached.
        for i in range(20):
            s3.put_object(Bucket=bucket, Key=f"many/{i}", Body=b"x" * 100)
            s3.get_object(Bucket=bucket, Key=f"many/{i}")["Body"].read()
        assert metric(gw, "s3_gateway_key_provider_requests_total", provider=provider, operation="wrap", result="ok") == 1
        assert metric(gw, "s3_gateway_key_provider_requests_total", provider=provider, operation="unwrap") == 0
        assert metric(gw, "s3_gateway_key_cache_lookups_total", result="hit") >= 22


def test_without_cache_every_request_calls_the_key_manager(provider_env, gateways, vault):
    gw = gateways({**provider_env("vault-transit"), "KEY_CACHE_TTL": "0", "KEY_INTERMEDIATE_LIFETIME": "0"})
    s3 = gw.client()
    with s3gw.temporary_bucket(s3, "nocache") as bucket:
        before = vault.stats()
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"data")
        for i in range(5):
            assert s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read() == b"data"
        after = vault.stats()
        assert after["encrypt"] - before["encrypt"] == 5
        assert after["decrypt"] - before["decrypt"] == 5


# ---------------------------------------------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize("provider", ["kmip", "aws-kms", "vault-transit"])
def test_key_manager_down_mid_run(provider, provider_env, gateways, kbackend, kmip, kms, vault):
    manager = {"kmip": kmip, "aws-kms": kms, "vault-transit": vault}[provider]
    gw = gateways({**provider_env(provider), "KEY_CACHE_TTL": "0", "KEY_PROVIDER_TIMEOUT": "1s"})
    s3 = gw.client()
    with s3gw.temporary_bucket(s3, "down") as bucket:
        s3.put_object(Bucket=bucket, Key="before", Body=b"written while up")
        manager.pause()
        try:
            # A write needing a new intermediate key (another bucket) and a read needing an unwrap both fail with 503.
            with s3gw.temporary_bucket(s3, "down-new") as other:
                with pytest.raises(Exception) as put_error:
                    s3.put_object(Bucket=other, Key="new", Body=b"never stored")
                assert error_code(put_error.value) == "ServiceUnavailable"
                assert "Contents" not in kbackend.client().list_objects_v2(Bucket=other)
            with pytest.raises(Exception) as get_error:
                s3.get_object(Bucket=bucket, Key="before")
            assert error_code(get_error.value) == "ServiceUnavailable"
            status, _, body = s3gw.http_request("GET", gw.endpoint + "/ready", timeout=10)
            assert status == 503 and f"key provider {provider}" in body.decode()
            assert s3gw.http_request("GET", gw.endpoint + "/health")[0] == 200
        finally:
            manager.resume()
        deadline = time.monotonic() + 20
        while s3gw.http_request("GET", gw.endpoint + "/ready", timeout=10)[0] != 200:
            assert time.monotonic() < deadline, "not ready again after the key manager came back"
            time.sleep(0.2)
        assert s3.get_object(Bucket=bucket, Key="before")["Body"].read() == b"written while up"
    log = s3gw.parse_json_log(gw.log_text())
    assert any(line.get("msg") == "key provider unavailable" and line.get("provider") == provider for line in log)


def test_revoked_keys_are_denied(provider_env, gateways, kmip, vault, kdir):
    # KMIP: a key revoked in the server. Vault: the object's key version retired (min_decryption_version).
    # AWS KMS: the gateway's IAM permission removed (moto does not enforce a disabled key's state).
    uid = kmip.create_key()
    vault.create_key("revocable")
    kms = key_managers.MotoKMS(kdir / "kms-revocable")
    try:
        cases = [
            ("kmip", {**provider_env("kmip"), "KMIP_KEY_ID": uid}, lambda: kmip.revoke(uid)),
            ("vault-transit", {**provider_env("vault-transit"), "VAULT_TRANSIT_KEY": "revocable"}, lambda: (
                vault.call("POST", "/v1/transit/keys/revocable/rotate"),
                vault.call("POST", "/v1/transit/keys/revocable/config", {"min_decryption_version": 2}))),
            ("aws-kms", {"ENCRYPTION_PASSWORD": "", "ENCRYPTION_KEY_PROVIDER": "aws-kms", **kms.gateway_env()}, kms.revoke),
        ]
        for provider, env, revoke in cases:
            gw = gateways({**env, "KEY_CACHE_TTL": "0"})
            s3 = gw.client()
            with s3gw.temporary_bucket(s3, "revoked") as bucket:
                secret = b"secret before revocation " + provider.encode()
                s3.put_object(Bucket=bucket, Key="doc", Body=secret)
                revoke()
                with pytest.raises(Exception) as denied:
                    s3.get_object(Bucket=bucket, Key="doc")
                assert error_code(denied.value) == "AccessDenied", provider
                assert secret not in str(denied.value.response).encode()
    finally:
        kms.stop()


# ---------------------------------------------------------------------------------------------------------------
# Bucket policy


def write_policy(path: Path, policy: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(policy))
    os.replace(tmp, path)  # like a ConfigMap update: a new file swapped in


def test_bucket_policy_plain_named_keys_and_reads_by_metadata(provider_env, gateways, kbackend, vault, tmp_path):
    policy = tmp_path / "policy.json"
    write_policy(policy, {"keys": {"tenant": {"provider": "vault-transit", "key": "s3eg"}},
                          "buckets": [{"match": "plain-*", "action": "plain"},
                                      {"match": "tenant-*", "action": "encrypt", "key": "tenant"}]})
    gw = gateways({**provider_env("raw"), **{k: v for k, v in provider_env("vault-transit").items()
                                            if k.startswith("VAULT_")},
                   "ENCRYPTION_KEY_PROVIDER": "raw", "ENCRYPTION_POLICY_FILE": str(policy)})
    s3 = gw.client()
    raw = kbackend.client()
    with s3gw.temporary_bucket(s3, "plain") as plain, s3gw.temporary_bucket(s3, "tenant") as tenant, \
            s3gw.temporary_bucket(s3, "other") as other:
        body = os.urandom(70_000)
        for bucket in (plain, tenant, other):
            s3.put_object(Bucket=bucket, Key="obj", Body=body)
            assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == body
        assert raw.get_object(Bucket=plain, Key="obj")["Body"].read() == body
        assert "s3eg-version" not in stored_metadata(kbackend, plain, "obj")
        # Listings of a plain bucket are the backend's, untouched.
        assert s3.list_objects_v2(Bucket=plain)["Contents"][0]["Size"] == 70_000
        assert stored_metadata(kbackend, tenant, "obj")["s3eg-provider"] == "vault-transit"
        assert stored_metadata(kbackend, other, "obj")["s3eg-provider"] == "raw"
        # An encrypted object copied into a plain bucket stays encrypted (re-wrapped, readable); never ciphertext.
        s3.copy_object(Bucket=plain, Key="copied", CopySource={"Bucket": tenant, "Key": "obj"})
        assert s3.get_object(Bucket=plain, Key="copied")["Body"].read() == body
        assert raw.get_object(Bucket=plain, Key="copied")["Body"].read() != body

        # The policy turns `tenant-*` plain: its encrypted object is still read by its metadata.
        write_policy(policy, {"buckets": [{"match": "tenant-*", "action": "plain"}]})
        deadline = time.monotonic() + 20
        while metric(gw, "s3_gateway_policy_reloads_total", result="ok") < 1:
            assert time.monotonic() < deadline, "policy not reloaded"
            time.sleep(0.2)
        assert s3.get_object(Bucket=tenant, Key="obj")["Body"].read() == body
        s3.put_object(Bucket=tenant, Key="after", Body=b"plain now")
        assert raw.get_object(Bucket=tenant, Key="after")["Body"].read() == b"plain now"
        # A broken file is refused; the last good policy stays.
        policy.write_text("{\"buckets\": [{\"match\": \"tenant-*\", \"action\": \"bogus\"}]}")
        deadline = time.monotonic() + 20
        while metric(gw, "s3_gateway_policy_reloads_total", result="error") < 1:
            assert time.monotonic() < deadline, "broken policy not noticed"
            time.sleep(0.2)
        s3.put_object(Bucket=tenant, Key="still-plain", Body=b"x")
        assert raw.get_object(Bucket=tenant, Key="still-plain")["Body"].read() == b"x"


def test_policy_reload_while_requests_are_in_flight(provider_env, gateways, kbackend, tmp_path):
    policy = tmp_path / "policy.json"
    write_policy(policy, {"buckets": []})
    gw = gateways({**provider_env("raw"), "ENCRYPTION_POLICY_FILE": str(policy)})
    s3 = gw.client(max_pool_connections=8)
    raw = kbackend.client()
    with s3gw.temporary_bucket(s3, "flip") as bucket:
        written: dict[str, bytes] = {}
        errors: list[str] = []
        stop = threading.Event()

        def writer(worker: int):
            client = gw.client()
            i = 0
            while not stop.is_set():
                key = f"w{worker}/{i}"
                body = os.urandom(16 * 1024 + worker)
                try:
                    client.put_object(Bucket=bucket, Key=key, Body=body)
                    if client.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
                        errors.append(f"{key}: read back differs")
                    written[key] = body
                except Exception as exc:  # noqa: BLE001 - every failure is a test failure
                    errors.append(f"{key}: {exc}")
                i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        try:
            for flip in range(4):
                action = "plain" if flip % 2 == 0 else "encrypt"
                write_policy(policy, {"buckets": [{"match": "flip-*", "action": action}]})
                deadline = time.monotonic() + 20
                while metric(gw, "s3_gateway_policy_reloads_total", result="ok") < flip + 1:
                    assert time.monotonic() < deadline, "policy not reloaded"
                    time.sleep(0.05)
                settled = len(written)
                while len(written) < settled + 4 and not errors:  # some requests under each policy
                    assert time.monotonic() < deadline + 20, "no progress"
                    time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert not errors, errors[:5]
        kinds = {"plain": 0, "encrypted": 0}
        for key, body in written.items():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
            encrypted = "s3eg-version" in stored_metadata(kbackend, bucket, key)
            kinds["encrypted" if encrypted else "plain"] += 1
            if not encrypted:
                assert raw.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        assert kinds["plain"] > 0 and kinds["encrypted"] > 0, kinds
        # The last policy (encrypt) holds for new objects.
        s3.put_object(Bucket=bucket, Key="final", Body=b"final")
        assert "s3eg-version" in stored_metadata(kbackend, bucket, "final")


# ---------------------------------------------------------------------------------------------------------------
# Rotation


def rotate(binary: Path, kbackend, env: dict[str, str], args: list[str]):
    out = run_tool(binary, ["rotate", *args], tool_env(kbackend, env))
    lines = [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    summaries = [line for line in lines if line.get("summary")]
    assert len(summaries) == 1, out.stdout.decode() + out.stderr.decode()
    return out.returncode, {line["key"]: line for line in lines if "key" in line}, summaries[0]


def test_rotate_between_providers_and_after_a_key_manager_rotation(provider_env, gateways, kbackend, vault, gateway_binary,
                                                                   tmp_path):
    vault.create_key("rotating")
    vault_env = {**provider_env("vault-transit"), "VAULT_TRANSIT_KEY": "rotating"}
    gw = gateways(provider_env("password"))
    s3 = gw.client()
    with s3gw.temporary_bucket(s3, "rot") as bucket:
        bodies = {f"k{i}": os.urandom(5000 + i) for i in range(6)}
        for key, body in bodies.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        s3gw.make_client(kbackend.endpoint, kbackend.access_key, kbackend.secret_key).put_object(
            Bucket=bucket, Key="plain", Body=b"plain")
        both = {**vault_env, "ENCRYPTION_PASSWORD": PASSWORD, "ENCRYPTION_KEY_PROVIDER": "vault-transit"}

        code, per_key, summary = rotate(gateway_binary, kbackend, both, ["--bucket", bucket, "--dry-run"])
        assert code == 0 and summary["would_rotate"] == 6 and summary["plain"] == 1
        assert stored_metadata(kbackend, bucket, "k0")["s3eg-provider"] == "password"

        # Interrupted after two objects, resumed: every object is rotated exactly once.
        code, first, _ = rotate(gateway_binary, kbackend, both, ["--bucket", bucket, "--page-size", "1", "--prefix", "k",
                                                                   "--resume-after", "k3"])
        assert code == 0 and sorted(first) == ["k4", "k5"]
        code, per_key, summary = rotate(gateway_binary, kbackend, both, ["--bucket", bucket])
        assert code == 0 and summary["rotated"] == 4 and summary["current"] == 2 and summary["target_key"] == "vault-transit:rotating"
        for key in bodies:
            meta = stored_metadata(kbackend, bucket, key)
            assert meta["s3eg-provider"] == "vault-transit" and meta["s3eg-key-id"] == "rotating:v1"
        assert rotate(gateway_binary, kbackend, both, ["--bucket", bucket])[2]["rotated"] == 0

        # A Vault-only gateway reads everything (no password configured any more).
        vault_gw = gateways(vault_env)
        for key, body in bodies.items():
            assert vault_gw.client().get_object(Bucket=bucket, Key=key)["Body"].read() == body

        # Rotation inside Vault: `rotate` re-wraps with Vault's rewrap, once per intermediate key.
        vault.call("POST", "/v1/transit/keys/rotating/rotate")
        before = vault.stats()["rewrap"]
        code, per_key, summary = rotate(gateway_binary, kbackend, vault_env, ["--bucket", bucket])
        assert code == 0 and summary["rotated"] == 6
        assert vault.stats()["rewrap"] - before == len({stored_metadata(kbackend, bucket, k)["s3eg-ik"] for k in bodies})
        for key, body in bodies.items():
            assert stored_metadata(kbackend, bucket, key)["s3eg-key-id"] == "rotating:v2"
            assert vault_gw.client().get_object(Bucket=bucket, Key=key)["Body"].read() == body
        vault.call("POST", "/v1/transit/keys/rotating/config", {"min_decryption_version": 2})
        fresh = gateways({**vault_env, "KEY_CACHE_TTL": "0"})
        assert fresh.client().get_object(Bucket=bucket, Key="k0")["Body"].read() == bodies["k0"]


# ---------------------------------------------------------------------------------------------------------------
# The operator's rendering, run: what `encryption-gateway-operator render` puts into the Deployment for the key
# fields (ConfigMap values, Secret references, the projected keys volume) starts the real gateway, which then
# wraps with the key manager the spec names and follows the policy the spec mounts.


def operator_bin() -> Path:
    path = Path(os.environ.get("OPERATOR_BIN") or s3gw.REPO / ".build" / "debug" / "encryption-gateway-operator")
    if not path.exists():
        pytest.fail(f"operator binary not found at {path}: run `swift build --build-tests` (make test's first phase) "
                    "or set OPERATOR_BIN", pytrace=False)
    return path


def render(name: str, spec: dict, tmp_path: Path) -> list[dict]:
    """The objects `encryption-gateway-operator render` makes of an EncryptionGateway with `spec`."""
    import yaml

    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
                                        "metadata": {"name": name, "namespace": "ns"}, "spec": spec}))
    out = subprocess.run([str(operator_bin()), "render", "-f", str(manifest)], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def pod_environment(rendered: list[dict], secrets_by_ref: dict[tuple[str, str], str],
                    config_maps: dict[tuple[str, str], str], mount_root: Path) -> dict[str, str]:
    """The gateway container's environment as the kubelet would build it, with the keys volume materialized
    under `mount_root` (its paths rewritten from /etc/s3gateway/keys)."""
    config = next(d for d in rendered if d["kind"] == "ConfigMap")["data"]
    pod = next(d for d in rendered if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mount = next((m["mountPath"] for m in container["volumeMounts"] if m["name"] == "keys"), "/etc/s3gateway/keys")
    volume = next((v["projected"] for v in pod["volumes"] if v["name"] == "keys"), {"sources": []})
    for source in volume["sources"]:
        if "serviceAccountToken" in source:
            path, value = source["serviceAccountToken"]["path"], "projected-sa-jwt"
        else:
            kind = "secret" if "secret" in source else "configMap"
            ref, item = source[kind], source[kind]["items"][0]
            table = secrets_by_ref if kind == "secret" else config_maps
            path, value = item["path"], table[(ref["name"], item["key"])]
        (mount_root / path).parent.mkdir(parents=True, exist_ok=True)
        (mount_root / path).write_text(value)
    env = {}
    for entry in container["env"]:
        ref = entry["valueFrom"]
        if "configMapKeyRef" in ref:
            env[entry["name"]] = config[ref["configMapKeyRef"]["key"]].replace(mount, str(mount_root))
        else:
            env[entry["name"]] = secrets_by_ref[(ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])]
    return env


def test_operator_rendered_key_settings_run_the_gateway(gateways, kbackend, kdir, tmp_path):
    vault = key_managers.VaultDouble(kdir / "vault-operator", "--jwt", "projected-sa-jwt=s3-gateway")
    try:
        vault.create_key("fleet")
        raw_key = secrets.token_hex(32)
        policy = {"buckets": [{"match": "op-plain-*", "action": "plain"}]}
        spec = {
            "backend": {"endpoint": kbackend.endpoint, "credentialsSecretRef": {"name": "backend"}},
            "clientCredentials": {"secretRef": {"name": "clients"}},
            "encryption": {
                "keyProvider": "vault-transit",
                "vault": {"address": vault.address, "transitKey": "fleet", "auth": {"kubernetes": {"role": "s3-gateway"}}},
                "rawKey": {"secretRef": {"name": "keys", "key": "raw"}},
                "policyConfigMapRef": {"name": "policy"},
                "keyCacheTTL": "1m", "intermediateKeyLifetime": "10m",
            },
        }
        rendered = render("fleet", spec, tmp_path)

        env = pod_environment(
            rendered,
            {("keys", "raw"): raw_key, ("backend", "accessKeyID"): kbackend.access_key,
             ("backend", "secretAccessKey"): kbackend.secret_key, ("clients", "accessKeyID"): "unused",
             ("clients", "secretAccessKey"): "unused"},
            {("policy", "policy.json"): json.dumps(policy)}, tmp_path / "keys")
        assert env["VAULT_AUTH_METHOD"] == "kubernetes" and env["ENCRYPTION_KEY_PROVIDER"] == "vault-transit"
        # The harness owns the listener and the credentials; everything key-related is the operator's.
        gw = gateways({"ENCRYPTION_PASSWORD": "", **{k: v for k, v in env.items()
                                                    if not k.startswith(("BACKEND_", "GATEWAY_")) and k != "LISTEN_ADDR"}})
        s3 = gw.client()
        with s3gw.temporary_bucket(s3, "op-enc") as bucket:
            s3.put_object(Bucket=bucket, Key="obj", Body=b"fleet data")
            assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"fleet data"
            meta = stored_metadata(kbackend, bucket, "obj")
            assert meta["s3eg-provider"] == "vault-transit" and meta["s3eg-key-id"] == "fleet:v1"
        with s3gw.temporary_bucket(s3, "op-plain") as bucket:
            s3.put_object(Bucket=bucket, Key="obj", Body=b"public")
            assert kbackend.client().get_object(Bucket=bucket, Key="obj")["Body"].read() == b"public"
        # Logged in with the projected service-account token; the one wrap served the bucket's PUT.
        assert vault.stats()["logins"] >= 1
        assert metric(gw, "s3_gateway_key_provider_requests_total", provider="vault-transit", operation="wrap", result="ok") == 1
    finally:
        vault.stop()


def metric_line(port: int, series: str) -> float | None:
    """The value of one exact series (name and labels) on the /metrics of a probe listener; None when absent."""
    text = s3gw.http_request("GET", f"http://127.0.0.1:{port}/metrics")[2].decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == series]
    return values[0] if values else None


def test_operator_rendered_connection_settings_run_the_gateway(gateways, kbackend, tmp_path):
    """spec.authTimeout, spec.maxUnauthenticatedConnections and spec.probes.port as rendered reach the gateway: the
    probes the Deployment declares answer on the probe listener, and the unauthenticated budget evicts."""
    import socket

    probe_port = s3gw.free_port()
    spec = {
        "backend": {"endpoint": kbackend.endpoint, "credentialsSecretRef": {"name": "backend"}},
        "clientCredentials": {"secretRef": {"name": "clients"}},
        "encryption": {"passwordSecretRef": {"name": "keys", "key": "password"}},
        # Long enough that only the budget (2) can close the idle sockets below.
        "authTimeout": "5m", "maxUnauthenticatedConnections": 2, "probes": {"port": probe_port},
        "tls": {"secretName": "gateway-tls"},
    }
    rendered = render("budgets", spec, tmp_path)
    env = pod_environment(rendered, {("keys", "password"): "operator-rendered-password", ("backend", "accessKeyID"): "x",
                                     ("backend", "secretAccessKey"): "x", ("clients", "accessKeyID"): "x",
                                     ("clients", "secretAccessKey"): "x"}, {}, tmp_path / "keys")
    assert (env["AUTH_TIMEOUT"], env["MAX_UNAUTHENTICATED_CONNECTIONS"], env["PROBE_ADDR"]) == ("5m", "2", f":{probe_port}")
    container = next(d for d in rendered if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # The harness owns the listener (plain HTTP here), the credentials and TLS; the rest is the operator's.
    gw = gateways({k: v for k, v in env.items()
                   if not k.startswith(("BACKEND_", "GATEWAY_", "TLS_")) and k != "LISTEN_ADDR"})
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["scheme"] == "HTTP"
        status = s3gw.http_request("GET", f"http://127.0.0.1:{ports[get['port']]}{get['path']}")[0]
        assert status == 200, f"{probe} {get}"

    # Three idle anonymous sockets on the gateway port with a budget of two: the idlest is closed to make room.
    # The harness's readiness checks used the gateway port; under load the server may not have seen their close yet,
    # and such a leftover would be evicted too, so wait until the gateway holds no connection.
    deadline = time.monotonic() + 10
    while metric_line(probe_port, "s3_gateway_active_connections") != 0:
        assert time.monotonic() < deadline, "the harness's readiness connections are still open"
        time.sleep(0.05)
    host, port = gw.endpoint.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=30) for _ in range(3)]
    try:
        try:
            closed = idle[0].recv(1) == b""
        except ConnectionResetError:
            closed = True
        assert closed, "the oldest anonymous connection was not closed"
    finally:
        for sock in idle:
            sock.close()
    assert metric_line(probe_port, 's3_gateway_rejected_connections_total{reason="evicted_unauthenticated"}') == 1
    assert gw.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
