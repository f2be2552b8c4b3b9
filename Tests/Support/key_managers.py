"""Real key managers for the key-provider tests: a PyKMIP server (KMIP 1.4 over mutual TLS), moto's KMS
server with IAM authentication switched on, and the Vault Transit double (Tests/Support; no Vault server can
be installed here). Each runs as its own process on a free loopback port; `pause()`/`resume()` freeze and thaw
it (SIGSTOP/SIGCONT: the key manager is unreachable but keeps its keys), `stop()` ends it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

import s3gw  # noqa: E402


class KeyManagerError(RuntimeError):
    pass


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: Path | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise KeyManagerError(f"{what} did not listen on {port} (exit {proc.poll()}):\n{tail}")


class _Process:
    """A process started in its own session: signals go to its whole process group, because some servers
    (PyKMIP) run their work in child processes that would otherwise outlive a stop or ignore a pause."""

    proc: subprocess.Popen

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------------------------------------------------------
# PyKMIP


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, the gateway's client certificate (CN=s3-gateway) and
    another client's (CN=stranger), all ECDSA P-256."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    # ECDSA P-256: PyKMIP's TLS 1.2 suites with AES-GCM are ECDHE-ECDSA ones (and the gateway offers only AEAD suites).
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    run("req", "-x509", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=s3eg-test-ca")
    for name, subject, ext in (
            ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("client", "/CN=s3-gateway", "extendedKeyUsage=clientAuth\n"),
            ("stranger", "/CN=stranger", "extendedKeyUsage=clientAuth\n")):
        (directory / f"{name}.ext").write_text(ext)
        run("req", *ec, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {n: directory / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key",
                                       "stranger.pem", "stranger.key")}


class PyKMIPServer(_Process):
    """PyKMIP's server with TLS client authentication; keys persist in an SQLite file across restarts."""

    def __init__(self, workdir: Path):
        exe = shutil.which("pykmip-server")
        if not exe:
            raise KeyManagerError("pykmip-server not found: pip install pykmip (make test installs it)")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.pki = make_pki(workdir / "pki")
        self.port = s3gw.free_port()
        self.config = workdir / "server.conf"
        self.config.write_text(
            "[server]\nhostname=127.0.0.1\nport=%d\ncertificate_path=%s\nkey_path=%s\nca_path=%s\n"
            "auth_suite=TLS1.2\nenable_tls_client_auth=True\nlogging_level=INFO\ndatabase_path=%s\n"
            % (self.port, self.pki["server.pem"], self.pki["server.key"], self.pki["ca.pem"], workdir / "kmip.db"))
        self.log = workdir / "pykmip.log"
        self._exe = exe
        self.start()

    def start(self) -> None:
        out = open(self.workdir / "pykmip.stdout", "ab")
        # Its multiprocessing helpers make a pymp-* directory under TMPDIR, which a SIGKILL (stop()) never lets them
        # remove: kept inside the workdir, it goes with it instead of piling up in /tmp.
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        self.proc = subprocess.Popen([self._exe, "-f", str(self.config), "-l", str(self.log)], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, "TMPDIR": str(tmp)})
        try:
            _wait_port(self.port, self.proc, "PyKMIP server", self.log)
        except BaseException:
            self.stop()
            raise

    def client(self):
        from kmip.core import enums
        from kmip.pie.client import ProxyKmipClient
        return ProxyKmipClient(hostname="127.0.0.1", port=self.port, cert=str(self.pki["client.pem"]),
                               key=str(self.pki["client.key"]), ca=str(self.pki["ca.pem"]), config_file="/dev/null",
                               kmip_version=enums.KMIPVersion.KMIP_1_4)

    def create_key(self) -> str:
        """An active AES-256 key usable for Encrypt/Decrypt, owned by the client certificate's identity."""
        from kmip.core import enums
        with self.client() as c:
            uid = c.create(enums.CryptographicAlgorithm.AES, 256, cryptographic_usage_mask=[
                enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT])
            c.activate(uid)
        return uid

    def revoke(self, uid: str) -> None:
        from kmip.core import enums
        with self.client() as c:
            c.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid, revocation_message="test",
                     compromise_occurrence_date=int(time.time()))

    def operations(self, name: str) -> int:
        """How many requests of one operation (e.g. "Encrypt") the server processed (from its log)."""
        return self.log.read_text(errors="replace").count(f"Processing operation: {name}")

    def gateway_env(self, uid: str) -> dict[str, str]:
        return {"KMIP_ENDPOINT": f"127.0.0.1:{self.port}", "KMIP_KEY_ID": uid,
                "KMIP_CA_FILE": str(self.pki["ca.pem"]), "KMIP_CLIENT_CERT_FILE": str(self.pki["client.pem"]),
                "KMIP_CLIENT_KEY_FILE": str(self.pki["client.key"])}


# ---------------------------------------------------------------------------------------------------------------
# moto KMS


class MotoKMS(_Process):
    """moto's server as AWS KMS. IAM authentication is switched on after set-up: the gateway's user `gateway`
    (policy kms:*) must sign correctly, and `revoke()` removes its permission (as an IAM admin would)."""

    def __init__(self, workdir: Path):
        import boto3
        import requests
        exe = shutil.which("moto_server")
        if not exe:
            raise KeyManagerError("moto_server not found: pip install 'moto[server]'")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = s3gw.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log = open(workdir / "moto-kms.log", "wb")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._set_up(workdir)
        except BaseException:
            self.stop()
            raise

    def _set_up(self, workdir: Path) -> None:
        import boto3
        import requests
        _wait_port(self.port, self.proc, "moto (KMS)", workdir / "moto-kms.log")
        setup = {"endpoint_url": self.endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup",
                 "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **setup)
        self.users = {}
        for user, action in (("gateway", "kms:*"), ("admin", "*")):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            self.users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
            iam.put_user_policy(UserName=user, PolicyName="access", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}))
        self.key_id = boto3.client("kms", **setup).create_key()["KeyMetadata"]["KeyId"]
        answer = requests.post(self.endpoint + "/moto-api/reset-auth", data=b"0", timeout=10)
        if answer.status_code != 200:
            raise KeyManagerError(f"moto reset-auth: {answer.status_code} {answer.text[:200]}")

    def admin(self, service: str):
        import boto3
        access, secret = self.users["admin"]
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=access,
                            aws_secret_access_key=secret)

    def revoke(self) -> None:
        self.admin("iam").delete_user_policy(UserName="gateway", PolicyName="access")

    def gateway_env(self, key_id: str | None = None) -> dict[str, str]:
        access, secret = self.users["gateway"]
        return {"AWS_KMS_KEY_ID": key_id or self.key_id, "AWS_KMS_REGION": "us-east-1", "AWS_KMS_ENDPOINT": self.endpoint,
                "AWS_KMS_ACCESS_KEY_ID": access, "AWS_KMS_SECRET_ACCESS_KEY": secret}


# ---------------------------------------------------------------------------------------------------------------
# Vault Transit double


class VaultDouble(_Process):
    SCRIPT = REPO / "Tests" / "Support" / "vault_transit_double.py"

    def __init__(self, workdir: Path, *args: str):
        workdir.mkdir(parents=True, exist_ok=True)
        self.root_token = "root-" + secrets.token_hex(8)
        self.proc = subprocess.Popen([sys.executable, str(self.SCRIPT), "--root-token", self.root_token, *args],
                                     stdout=subprocess.PIPE, stderr=open(workdir / "vault.log", "wb"),
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise KeyManagerError(f"Vault double did not start: {line!r}")
        self.port = int(line.split()[1])
        self.address = f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        status, _, data = s3gw.http_request(method, self.address + path, body=json.dumps(body).encode() if body else None,
                                            headers={"X-Vault-Token": token or self.root_token,
                                                     "Content-Type": "application/json"})
        return status, (json.loads(data) if data else {})

    def create_key(self, name: str, derived: bool = True) -> None:
        status, body = self.call("POST", f"/v1/transit/keys/{name}", {"derived": derived})
        assert status in (200, 204), body

    def token(self, ttl: int = 3600) -> str:
        status, body = self.call("POST", "/v1/auth/token/create", {"ttl": ttl, "policies": ["transit"]})
        assert status == 200, body
        return body["auth"]["client_token"]

    def stats(self) -> dict[str, int]:
        return self.call("GET", "/_double/stats")[1]

    def gateway_env(self, key: str, token: str) -> dict[str, str]:
        return {"VAULT_ADDR": self.address, "VAULT_TRANSIT_KEY": key, "VAULT_TOKEN": token}


# ---------------------------------------------------------------------------------------------------------------
# Command line, for the Swift tests: `key_managers.py kmip WORKDIR` starts a PyKMIP server with one active key,
# prints one JSON line (port, uid, certificate paths) and stops the server when stdin closes.


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "kmip":
        print("usage: key_managers.py kmip WORKDIR", file=sys.stderr)
        return 2
    server = PyKMIPServer(Path(argv[2]))
    try:
        uid = server.create_key()
        print(json.dumps({"port": server.port, "uid": uid, "ca": str(server.pki["ca.pem"]),
                          "cert": str(server.pki["client.pem"]), "key": str(server.pki["client.key"]),
                          "stranger_cert": str(server.pki["stranger.pem"]), "stranger_key": str(server.pki["stranger.key"]),
                          "log": str(server.log)}), flush=True)
        sys.stdin.read()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
