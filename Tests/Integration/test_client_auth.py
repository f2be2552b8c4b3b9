"""Every client signs its way (issue 8): real clients through an encrypting gateway binary with a credentials file,
Ceph RGW and moto behind it. Refusals are checked with S3's error codes and, on the backend, that nothing was stored.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import zlib

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import s3gw

pytestmark = [pytest.mark.gateway_only]

PASSWORD = "client-auth-test-password-0123456789"


@pytest.fixture(scope="module")
def auth_gw(request, backend, tmp_root):
    """An encrypting gateway with a credentials file: full, read-only and bucket-limited credentials (plus the
    generated GATEWAY_ACCESS_KEY pair)."""
    binary = request.getfixturevalue("gateway_binary")
    workdir = tmp_root / f"auth-gw-{backend.name}"
    workdir.mkdir(parents=True, exist_ok=True)
    creds = {
        "FULL": {"accessKey": "AUTHFULL", "secretKey": "full-secret-" + os.urandom(8).hex()},
        "RO": {"accessKey": "AUTHREADONLY", "secretKey": "ro-secret-" + os.urandom(8).hex(), "readOnly": True},
        "LIMITED": {"accessKey": "AUTHLIMITED", "secretKey": "limited-secret-" + os.urandom(8).hex(),
                    "buckets": ["limited-" + os.urandom(4).hex()]},
    }
    path = workdir / "credentials.json"
    path.write_text(json.dumps({"credentials": list(creds.values())}))
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, workdir, binary=binary,
                            name=f"auth-gateway-{backend.name}",
                            extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": PASSWORD,
                                       "GATEWAY_CREDENTIALS_FILE": str(path)})
    gw.creds = creds
    gw.creds_path = path
    yield gw
    code = gw.terminate()
    assert code == 0, f"gateway exited with {code}; log tail:\n{gw.log_tail()}"


@pytest.fixture(scope="module")
def auth_gw_tls(request, backend, tmp_root, auth_gw):
    """The same credentials on an https gateway (test CA): boto3 and the aws CLI send aws-chunked only over https."""
    binary = request.getfixturevalue("gateway_binary")
    workdir = tmp_root / f"auth-gw-tls-{backend.name}"
    ca = s3gw.make_test_ca(workdir / "ca")
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, workdir, binary=binary, tls=ca,
                            name=f"auth-gateway-tls-{backend.name}",
                            extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": PASSWORD,
                                       "GATEWAY_CREDENTIALS_FILE": str(auth_gw.creds_path)})
    gw.creds = auth_gw.creds
    yield gw
    code = gw.terminate()
    assert code == 0, f"gateway exited with {code}; log tail:\n{gw.log_tail()}"


def client_for(gw, name: str | None = None, **config):
    if name is None:
        return gw.client(**config)
    c = gw.creds[name]
    return s3gw.make_client(gw.endpoint, c["accessKey"], c["secretKey"], verify=gw.ca_file, **config)


def sent_payload_modes(client) -> list[str]:
    """Records the x-amz-content-sha256 of every request the client sends (what the SDK chose)."""
    seen: list[str] = []
    client.meta.events.register("before-send.s3.*", lambda request, **_: seen.append(
        request.headers.get("x-amz-content-sha256", b"").decode() if isinstance(request.headers.get("x-amz-content-sha256"), bytes)
        else request.headers.get("x-amz-content-sha256", "")))
    return seen


@pytest.fixture
def abucket(auth_gw):
    with s3gw.temporary_bucket(auth_gw.client(), "auth") as name:
        yield name


def stored(backend, bucket: str, key: str) -> bool:
    try:
        backend.client().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


def error_of(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def code_of(body: bytes) -> str | None:
    text = body.decode(errors="replace")
    if "<Code>" not in text:
        return None
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def assert_encrypted_at_rest(backend, bucket: str, key: str, plaintext: bytes) -> None:
    raw = backend.client().get_object(Bucket=bucket, Key=key)
    assert any(k.startswith("s3eg-") for k in raw["Metadata"]), "the backend object carries no gateway metadata"
    assert raw["ContentLength"] > len(plaintext)
    data = raw["Body"].read()
    if len(plaintext) >= 16:
        assert plaintext[:16] not in data


def run(cmd: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def curl(*args: str) -> tuple[int, bytes]:
    if not shutil.which("curl"):
        pytest.fail("curl not installed (make test installs it)")
    out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, timeout=60)
    body, _, status = out.stdout.rpartition(b"\n")
    return int(status), body


# ---------------------------------------------------------------------------------------------------------------
# Real clients


def test_restic_init_backup_check_restore(auth_gw, backend, abucket, tmp_path):
    """restic 0.14 (minio-go) signs every upload as STREAMING-AWS4-HMAC-SHA256-PAYLOAD, even over http."""
    if not shutil.which("restic"):
        pytest.fail("restic not installed (make test installs it)")
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "small.txt").write_text("hello restic\n" * 100)
    (src / "big.bin").write_bytes(os.urandom(6 << 20))
    env = s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": auth_gw.access_key, "AWS_SECRET_ACCESS_KEY": auth_gw.secret_key,
                                 "RESTIC_PASSWORD": "restic-repo-password", "RESTIC_CACHE_DIR": str(tmp_path / "cache")})
    repo = f"s3:{auth_gw.endpoint}/{abucket}/repo"
    run(["restic", "-r", repo, "init"], env)
    run(["restic", "-r", repo, "backup", str(src)], env)
    run(["restic", "-r", repo, "check", "--read-data"], env)
    run(["restic", "-r", repo, "restore", "latest", "--target", str(tmp_path / "out")], env)
    restored = tmp_path / "out" / str(src).lstrip("/")
    assert s3gw.sha256_file(restored / "big.bin") == s3gw.sha256_file(src / "big.bin")
    assert (restored / "dir" / "small.txt").read_text() == "hello restic\n" * 100
    # What restic stored is ciphertext on the backend.
    config = backend.client().get_object(Bucket=abucket, Key="repo/config")
    assert any(k.startswith("s3eg-") for k in config["Metadata"])


@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
def test_boto3_default_over_http(auth_gw, backend, abucket, checksums):
    """Over http boto3 signs the payload hash and sends x-amz-checksum-crc32 as a header (unless when_required)."""
    s3 = client_for(auth_gw, "FULL", request_checksum_calculation=checksums, response_checksum_validation=checksums)
    for size in (0, 5, 3 << 20):
        data = os.urandom(size)
        key = f"boto/{checksums}/{size}"
        s3.put_object(Bucket=abucket, Key=key, Body=data)
        assert s3.get_object(Bucket=abucket, Key=key)["Body"].read() == data
        assert_encrypted_at_rest(backend, abucket, key, data)
    # A wrong CRC32 is refused with BadDigest and stores nothing.
    bad = client_for(auth_gw, "FULL")
    assert error_of(lambda: bad.put_object(Bucket=abucket, Key="boto/bad-crc", Body=b"payload",
                                           ChecksumCRC32=base64.b64encode(b"\0\0\0\0").decode())) == ("BadDigest", 400)
    assert not stored(backend, abucket, "boto/bad-crc")


def test_boto3_default_over_https_sends_aws_chunked_with_crc32_trailer(auth_gw_tls, backend, abucket):
    s3 = client_for(auth_gw_tls, "FULL")
    modes = sent_payload_modes(s3)
    for size in (1, 70_000, 3 << 20):
        data = os.urandom(size)
        key = f"https/{size}"
        s3.put_object(Bucket=abucket, Key=key, Body=data)
        assert s3.get_object(Bucket=abucket, Key=key)["Body"].read() == data
        assert_encrypted_at_rest(backend, abucket, key, data)
    assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in modes, modes
    # A wrong CRC32 in the trailer is BadDigest, and nothing is stored.
    bad = client_for(auth_gw_tls, "FULL")
    bad.meta.events.register("before-send.s3.PutObject", _corrupt_trailer)
    assert error_of(lambda: bad.put_object(Bucket=abucket, Key="https/bad", Body=b"some payload")) == ("BadDigest", 400)
    assert not stored(backend, abucket, "https/bad")


def _corrupt_trailer(request, **_):
    body = request.body
    data = body if isinstance(body, bytes) else body.read()
    marker = b"x-amz-checksum-crc32:"
    at = data.index(marker) + len(marker)
    request.body = data[:at] + b"AAAAAA==" + data[at + 8:]


def test_awscli_cp_over_https_with_defaults(auth_gw_tls, backend, abucket, tmp_path):
    full = auth_gw_tls.creds["FULL"]
    src = tmp_path / "small.bin"
    src.write_bytes(os.urandom(2 << 20))
    env = s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": full["accessKey"], "AWS_SECRET_ACCESS_KEY": full["secretKey"],
                                 "AWS_CA_BUNDLE": auth_gw_tls.ca_file})
    run(["aws", "--endpoint-url", auth_gw_tls.endpoint, "s3", "cp", str(src), f"s3://{abucket}/cli/small.bin"], env)
    run(["aws", "--endpoint-url", auth_gw_tls.endpoint, "s3", "cp", f"s3://{abucket}/cli/small.bin", str(tmp_path / "back.bin")], env)
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert_encrypted_at_rest(backend, abucket, "cli/small.bin", src.read_bytes())


def test_awscli_cp_large_over_https_with_credentials_file(auth_gw_tls, backend, abucket, tmp_path):
    """The aws CLI with default settings over https, a credential from GATEWAY_CREDENTIALS_FILE: a 20 MiB file goes
    up as a multipart upload whose UploadPart bodies are aws-chunked with CRC32 trailers, is stored as ciphertext,
    and comes back byte-identical."""
    full = auth_gw_tls.creds["FULL"]
    src = tmp_path / "large.bin"
    src.write_bytes(os.urandom(20 << 20))
    env = s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": full["accessKey"], "AWS_SECRET_ACCESS_KEY": full["secretKey"],
                                 "AWS_CA_BUNDLE": auth_gw_tls.ca_file})
    up = run(["aws", "--debug", "--endpoint-url", auth_gw_tls.endpoint, "s3", "cp", "--only-show-errors", str(src),
              f"s3://{abucket}/cli/large.bin"], env)
    # What the CLI chose, from its own debug log: the parts went as aws-chunked bodies with a CRC32 trailer.
    part_requests = [line for line in up.stderr.splitlines()
                     if "Sending http request" in line and "partNumber=" in line and "method=PUT" in line]
    assert len(part_requests) >= 2, up.stderr[-3000:]
    for line in part_requests:
        assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in line and "x-amz-checksum-crc32" in line, line[:2000]
    head = backend.client().head_object(Bucket=abucket, Key="cli/large.bin")
    assert head["Metadata"].get("s3eg-layout") == "multipart", head["Metadata"]
    assert head["ETag"].strip('"').endswith(f"-{len(part_requests)}"), head["ETag"]
    assert_encrypted_at_rest(backend, abucket, "cli/large.bin", src.read_bytes())
    back = tmp_path / "back.bin"
    run(["aws", "--endpoint-url", auth_gw_tls.endpoint, "s3", "cp", "--only-show-errors", f"s3://{abucket}/cli/large.bin",
         str(back)], env)
    assert s3gw.sha256_file(back) == s3gw.sha256_file(src)


@pytest.mark.parametrize("mode,trailer", [
    ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "x-amz-checksum-crc32"),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", None),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "x-amz-checksum-crc32c"),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "x-amz-checksum-sha256"),
])
def test_aws_chunked_modes_store_plaintext_encrypted(auth_gw, backend, abucket, mode, trailer):
    """The three aws-chunked modes as the SDKs frame them (here over http, with our own Python framing)."""
    c = auth_gw.creds["FULL"]
    data = os.urandom((1 << 20) + 12345)
    sums = {"x-amz-checksum-crc32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
            "x-amz-checksum-crc32c": lambda d: s3gw.crc32c(d).to_bytes(4, "big"),
            "x-amz-checksum-sha256": lambda d: hashlib.sha256(d).digest()}
    value = None
    if trailer:
        value = base64.b64encode(sums[trailer](data)).decode()
    key = f"chunked/{mode}/{trailer}"
    url = f"{auth_gw.endpoint}/{abucket}/{key}"
    headers, body = s3gw.aws_chunked_put(url, c["accessKey"], c["secretKey"], data, mode=mode,
                                         trailer=(trailer, value) if trailer else None)
    status, _, answer = s3gw.http_request("PUT", url, headers=headers, body=body, timeout=60)
    assert status == 200, answer
    got = client_for(auth_gw, "FULL").get_object(Bucket=abucket, Key=key)
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert_encrypted_at_rest(backend, abucket, key, data)


def test_presigned_urls_with_curl(auth_gw, backend, abucket, tmp_path):
    """boto3 generate_presigned_url (SigV2 by default, and SigV4) and awscli v1 `aws s3 presign` (SigV2), fetched with curl."""
    full = auth_gw.creds["FULL"]
    s3 = client_for(auth_gw, "FULL")
    data = os.urandom(200_000)
    s3.put_object(Bucket=abucket, Key="presign/object", Body=data)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(150_000))
    for version in ("s3", "s3v4"):
        signer = client_for(auth_gw, "FULL", signature_version=version)
        url = signer.generate_presigned_url("get_object", Params={"Bucket": abucket, "Key": "presign/object"}, ExpiresIn=300)
        assert ("X-Amz-Signature=" in url) == (version == "s3v4")
        assert curl(url) == (200, data)
        put_key = f"presign/put-{version}"
        url = signer.generate_presigned_url("put_object", Params={"Bucket": abucket, "Key": put_key}, ExpiresIn=300)
        status, body = curl("-X", "PUT", "-T", str(upload), "-H", "Content-Type:", url)
        assert status == 200, body
        assert s3.get_object(Bucket=abucket, Key=put_key)["Body"].read() == upload.read_bytes()
        assert_encrypted_at_rest(backend, abucket, put_key, upload.read_bytes())
    env = s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": full["accessKey"], "AWS_SECRET_ACCESS_KEY": full["secretKey"]})
    url = run(["aws", "--endpoint-url", auth_gw.endpoint, "s3", "presign", f"s3://{abucket}/presign/object"], env).stdout.strip()
    assert "Signature=" in url and "AWSAccessKeyId=" in url, url
    assert curl(url) == (200, data)


@pytest.mark.parametrize("signature_v2", [True, False])
def test_s3cmd_signature_versions(auth_gw, abucket, payloads, tmp_path, signature_v2):
    if not shutil.which("s3cmd"):
        pytest.fail("s3cmd not installed (make test installs it)")
    full = auth_gw.creds["FULL"]
    hostport = urllib.parse.urlsplit(auth_gw.endpoint).netloc
    cfg = tmp_path / "s3cmd.cfg"
    cfg.write_text("\n".join([
        "[default]", f"access_key = {full['accessKey']}", f"secret_key = {full['secretKey']}",
        f"host_base = {hostport}", f"host_bucket = {hostport}", "use_https = False", "bucket_location = us-east-1",
        f"signature_v2 = {signature_v2}", "",
    ]))
    env = s3gw.clean_client_env({"HOME": str(tmp_path)})

    def s3cmd(*args: str) -> subprocess.CompletedProcess:
        return run(["s3cmd", "-c", str(cfg), "--no-progress", *args], env)

    src = payloads[1 << 20]
    s3cmd("put", str(src), f"s3://{abucket}/s3cmd/file.bin")
    assert f"s3://{abucket}/s3cmd/file.bin" in s3cmd("ls", f"s3://{abucket}/s3cmd/").stdout
    s3cmd("get", str(f"s3://{abucket}/s3cmd/file.bin"), str(tmp_path / "back.bin"))
    assert s3gw.sha256_file(tmp_path / "back.bin") == s3gw.sha256_file(src)
    s3cmd("setacl", "--acl-private", f"s3://{abucket}/s3cmd/file.bin")  # a ?acl sub-resource in the signature
    s3cmd("del", f"s3://{abucket}/s3cmd/file.bin")


# ---------------------------------------------------------------------------------------------------------------
# Refusals: S3's error codes, nothing stored


def test_header_signature_refusals(auth_gw, backend, abucket):
    full = auth_gw.creds["FULL"]
    url = f"{auth_gw.endpoint}/{abucket}/refused/header"

    def put(headers, body=b"hello"):
        status, _, answer = s3gw.http_request("PUT", url, headers=headers, body=body)
        return status, code_of(answer)

    signed = lambda **kw: s3gw.sigv4_headers("PUT", url, full["accessKey"], kw.pop("secret", full["secretKey"]),  # noqa: E731
                                             payload_hash=kw.pop("payload_hash", hashlib.sha256(b"hello").hexdigest()), **kw)
    assert put(signed(secret="wrong-secret")) == (403, "SignatureDoesNotMatch")
    assert put(signed(region="eu-west-1")) == (400, "AuthorizationHeaderMalformed")
    skewed = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    assert put(signed(now=skewed)) == (403, "RequestTimeTooSkewed")
    assert put(signed(), body=b"hellO") == (400, "XAmzContentSHA256Mismatch")
    assert put(s3gw.sigv4_headers("PUT", url, "NOSUCHKEY", "x", payload_hash="UNSIGNED-PAYLOAD")) == (403, "InvalidAccessKeyId")
    assert put({}) == (403, "AccessDenied")
    assert not stored(backend, abucket, "refused/header")
    # Failures are counted by reason on /metrics.
    metrics = s3gw.http_request("GET", f"{auth_gw.endpoint}/metrics")[2].decode()
    for reason in ("signature_mismatch", "wrong_region", "clock_skew", "unknown_access_key", "anonymous"):
        assert f's3_gateway_auth_failures_total{{reason="{reason}"}}' in metrics, reason


def test_presign_refusals(auth_gw, backend, abucket):
    full = auth_gw.creds["FULL"]
    url = f"{auth_gw.endpoint}/{abucket}/refused/presign"
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    expired = s3gw.presign_v4("PUT", url, full["accessKey"], full["secretKey"], expires=60, now=past)
    assert curl("-X", "PUT", "--data-binary", "x", expired)[0] == 403
    assert code_of(curl("-X", "PUT", "--data-binary", "x", expired)[1]) == "AccessDenied"
    good = s3gw.presign_v4("PUT", url, full["accessKey"], full["secretKey"], expires=60)
    tampered = good.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    assert code_of(curl("-X", "PUT", "--data-binary", "x", tampered)[1]) == "SignatureDoesNotMatch"
    assert code_of(curl("-X", "PUT", "--data-binary", "x", good.replace("/refused/presign", "/refused/other"))[1]) == "SignatureDoesNotMatch"
    v2 = s3gw.presign_v2("PUT", url, full["accessKey"], full["secretKey"], expires_at=int(time.time()) - 10)
    assert code_of(curl("-X", "PUT", "--data-binary", "x", v2)[1]) == "AccessDenied"
    v2 = s3gw.presign_v2("PUT", url, full["accessKey"], full["secretKey"], expires_at=int(time.time()) + 60)
    assert code_of(curl("-X", "PUT", "--data-binary", "x", v2.replace("Expires=", "Expires=1"))[1]) == "SignatureDoesNotMatch"
    assert not stored(backend, abucket, "refused/presign")
    assert curl("-X", "PUT", "--data-binary", "x", good)[0] == 200  # the untampered URL works


def test_aws_chunked_refusals(auth_gw, backend, abucket):
    full = auth_gw.creds["FULL"]
    data = os.urandom(300_000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()

    def put(key, mode, mangle=None, trailer=None):
        url = f"{auth_gw.endpoint}/{abucket}/{key}"
        headers, body = s3gw.aws_chunked_put(url, full["accessKey"], full["secretKey"], data, mode=mode, chunk_size=64 << 10,
                                             trailer=trailer, mangle=mangle)
        status, _, answer = s3gw.http_request("PUT", url, headers=headers, body=body, timeout=60)
        assert not stored(backend, abucket, key), key
        return status, code_of(answer)

    signed = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    def flip_data(pieces):
        p = bytearray(pieces[1])
        p[-10] ^= 1
        return [pieces[0], bytes(p), *pieces[2:]]

    def flip_signature(pieces):
        head, _, rest = pieces[2].partition(b"\r\n")
        return [*pieces[:2], head[:-1] + (b"0" if head[-1:] != b"0" else b"1") + b"\r\n" + rest, *pieces[3:]]

    assert put("refused/chunk-data", signed, flip_data) == (403, "SignatureDoesNotMatch")
    assert put("refused/chunk-signature", signed, flip_signature) == (403, "SignatureDoesNotMatch")
    assert put("refused/chunk-dropped", signed, lambda p: [p[0], *p[2:]])[0] in (400, 403)
    trailer = ("x-amz-checksum-crc32", crc)
    assert put("refused/trailer", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
               lambda p: [*p[:-1], p[-1].replace(crc.encode(), b"AAAAAA==")], trailer) == (403, "SignatureDoesNotMatch")
    assert put("refused/crc", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer=("x-amz-checksum-crc32", "AAAAAA==")) == (400, "BadDigest")
    assert put("refused/unsigned-data", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", flip_data, trailer) == (400, "BadDigest")


def test_credential_permissions(auth_gw, backend, abucket):
    ro = client_for(auth_gw, "RO")
    admin = auth_gw.client()
    admin.put_object(Bucket=abucket, Key="perm/existing", Body=b"readable")
    assert ro.get_object(Bucket=abucket, Key="perm/existing")["Body"].read() == b"readable"
    assert error_of(lambda: ro.put_object(Bucket=abucket, Key="perm/ro-write", Body=b"x")) == ("AccessDenied", 403)
    assert error_of(lambda: ro.delete_object(Bucket=abucket, Key="perm/existing")) == ("AccessDenied", 403)
    assert not stored(backend, abucket, "perm/ro-write")
    assert stored(backend, abucket, "perm/existing")

    limited_bucket = auth_gw.creds["LIMITED"]["buckets"][0]
    limited = client_for(auth_gw, "LIMITED")
    admin.create_bucket(Bucket=limited_bucket)
    try:
        limited.put_object(Bucket=limited_bucket, Key="mine", Body=b"ok")
        assert error_of(lambda: limited.put_object(Bucket=abucket, Key="perm/outside", Body=b"x")) == ("AccessDenied", 403)
        assert error_of(lambda: limited.get_object(Bucket=abucket, Key="perm/existing")) == ("AccessDenied", 403)
        assert error_of(lambda: limited.copy_object(Bucket=limited_bucket, Key="stolen",
                                                    CopySource={"Bucket": abucket, "Key": "perm/existing"})) == ("AccessDenied", 403)
        assert not stored(backend, abucket, "perm/outside")
        assert not stored(backend, limited_bucket, "stolen")
    finally:
        admin.delete_object(Bucket=limited_bucket, Key="mine")
        admin.delete_bucket(Bucket=limited_bucket)


# ---------------------------------------------------------------------------------------------------------------
# POST Object (browser form uploads), signed by boto3's generate_presigned_post and sent by curl -F


def post_form(url: str, fields: dict[str, str], file_path, *extra: str) -> tuple[int, dict[str, str], bytes]:
    """curl -F, as a browser sends a form: the fields in order, then the file part last."""
    args = []
    for name, value in fields.items():
        args += ["--form-string", f"{name}={value}"]
    args += ["-F", f"file=@{file_path}"]
    out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "-", *args, *extra, url], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_post_object_form_upload(auth_gw, backend, abucket, tmp_path, version):
    """A form signed with SigV4 or SigV2 is stored encrypted, small (read whole) and large (streamed)."""
    signer = client_for(auth_gw, "FULL", signature_version=version)
    reader = client_for(auth_gw, "FULL")
    for size, status in ((100_000, "201"), (3 << 20, "204")):
        data = os.urandom(size)
        src = tmp_path / f"upload-{size}.bin"
        src.write_bytes(data)
        key = f"post/{version}/{size}/${{filename}}"
        post = signer.generate_presigned_post(
            abucket, key, ExpiresIn=300,
            Fields={"Content-Type": "application/x-test", "x-amz-meta-origin": "form", "success_action_status": status},
            Conditions=[["starts-with", "$key", f"post/{version}/"], {"Content-Type": "application/x-test"},
                        {"x-amz-meta-origin": "form"}, {"success_action_status": status},
                        ["content-length-range", 1, 10 << 20]])
        code, headers, body = post_form(post["url"], post["fields"], src)
        assert code == int(status), body
        stored_key = f"post/{version}/{size}/{src.name}"
        if status == "201":
            assert f"<Key>{stored_key}</Key>" in body.decode()
            assert "<ETag>" in body.decode()
        got = reader.get_object(Bucket=abucket, Key=stored_key)
        assert got["Body"].read() == data
        assert got["ContentType"] == "application/x-test"
        assert got["Metadata"]["origin"] == "form"
        if size < (1 << 20):
            assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert_encrypted_at_rest(backend, abucket, stored_key, data)


def test_post_object_redirect_and_refusals(auth_gw, backend, abucket, tmp_path):
    """success_action_redirect; an expired policy, a violated condition, a tampered signature, a file over the
    content-length-range and a read-only credential are refused with S3's errors and store nothing."""
    src = tmp_path / "form.bin"
    src.write_bytes(os.urandom(50_000))
    signer = client_for(auth_gw, "FULL", signature_version="s3v4")

    def presigned(key, expires=300, conditions=None, fields=None, who="FULL"):
        return client_for(auth_gw, who, signature_version="s3v4").generate_presigned_post(
            abucket, key, ExpiresIn=expires, Fields=fields, Conditions=conditions)

    post = presigned("post/redirect", fields={"success_action_redirect": "https://example.test/done?x=1"},
                     conditions=[{"success_action_redirect": "https://example.test/done?x=1"}])
    code, headers, _ = post_form(post["url"], post["fields"], src)
    assert code == 303
    target = urllib.parse.urlsplit(headers["location"])
    query = dict(urllib.parse.parse_qsl(target.query))
    assert target.netloc == "example.test" and query["x"] == "1" and query["key"] == "post/redirect"
    assert query["bucket"] == abucket and query["etag"].strip('"') == hashlib.md5(src.read_bytes()).hexdigest()
    assert stored(backend, abucket, "post/redirect")

    def refused(key, post, expected, *extra):
        code, _, body = post_form(post["url"], post["fields"], src, *extra)
        assert (code, code_of(body)) == expected, body
        assert not stored(backend, abucket, key)

    refused("post/expired", presigned("post/expired", expires=-60), (403, "AccessDenied"))
    # The policy allows keys under post/ok/ only; the form names another key.
    post = presigned("post/ok/x", conditions=[["starts-with", "$key", "post/ok/"]])
    post["fields"]["key"] = "post/elsewhere"
    refused("post/elsewhere", post, (403, "AccessDenied"))
    post = presigned("post/tampered")
    post["fields"]["policy"] = post["fields"]["policy"][:-4] + ("AAAA" if not post["fields"]["policy"].endswith("AAAA") else "BBBB")
    refused("post/tampered", post, (403, "SignatureDoesNotMatch"))
    refused("post/too-big", presigned("post/too-big", conditions=[["content-length-range", 1, 1000]]), (400, "EntityTooLarge"))
    # A field the policy does not name.
    post = presigned("post/extra")
    post["fields"]["x-amz-meta-sneaky"] = "1"
    refused("post/extra", post, (403, "AccessDenied"))
    refused("post/read-only", presigned("post/read-only", who="RO"), (403, "AccessDenied"))
    metrics = s3gw.http_request("GET", f"{auth_gw.endpoint}/metrics")[2].decode()
    assert 's3_gateway_auth_failures_total{reason="expired"}' in metrics


def test_post_object_tagging_field(auth_gw, backend, abucket, tmp_path):
    """The form's tagging field (a Tagging XML document) tags the stored object, as S3 applies it: the backend's
    GetObjectTagging returns the tags. A malformed document is MalformedXML and an invalid tag InvalidTag, both
    with nothing stored."""
    src = tmp_path / "tagged.bin"
    data = os.urandom(70_000)
    src.write_bytes(data)
    signer = client_for(auth_gw, "FULL", signature_version="s3v4")

    def tagging(tags):
        return ("<Tagging><TagSet>" + "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags)
                + "</TagSet></Tagging>")

    def post(key, document):
        form = signer.generate_presigned_post(abucket, key, ExpiresIn=300, Fields={"tagging": document},
                                              Conditions=[{"tagging": document}])
        return post_form(form["url"], form["fields"], src)

    tags = [("project", "blue sky"), ("cost:center", "a+b=c/d@e"), ("été", "ok")]
    code, _, body = post("post/tagged", tagging(tags))
    assert code == 204, body
    got = backend.client().get_object_tagging(Bucket=abucket, Key="post/tagged")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in got) == sorted(tags)
    assert client_for(auth_gw, "FULL").get_object(Bucket=abucket, Key="post/tagged")["Body"].read() == data
    assert_encrypted_at_rest(backend, abucket, "post/tagged", data)
    for key, document, expected in (("post/bad-xml", "<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet>", (400, "MalformedXML")),
                                    ("post/bad-tag", tagging([("a!b", "v")]), (400, "InvalidTag")),
                                    ("post/too-many", tagging([(f"k{i}", "v") for i in range(11)]), (400, "InvalidTag"))):
        code, _, body = post(key, document)
        assert (code, code_of(body)) == expected, body
        assert not stored(backend, abucket, key)


# ---------------------------------------------------------------------------------------------------------------
# Checksum records: a PUT's verified flexible checksum comes back on whole-object GET/HEAD with checksum mode


def test_checksum_records_returned_with_checksum_mode(auth_gw, auth_gw_tls, backend, abucket):
    cases = [
        # (gateway, key, size, put arguments): header checksums over http (buffered and streamed), and the
        # aws-chunked CRC32 trailer boto3 sends over https (streamed: recorded after the upload, with the ETag).
        (auth_gw, "ck/sha256-small", 100_000, {"ChecksumAlgorithm": "SHA256"}),
        (auth_gw, "ck/sha1-large", 3 << 20, {"ChecksumAlgorithm": "SHA1"}),
        (auth_gw_tls, "ck/trailer-large", 3 << 20, {}),
    ]
    for gw, key, size, extra in cases:
        s3 = client_for(gw)
        data = os.urandom(size)
        put = s3.put_object(Bucket=abucket, Key=key, Body=data, **extra)
        names = [k for k in put if k.startswith("Checksum") and k != "ChecksumType"]
        assert len(names) == 1, (key, put)
        name = names[0]
        got = s3.get_object(Bucket=abucket, Key=key, ChecksumMode="ENABLED")  # botocore validates the body against it
        assert got[name] == put[name], key
        assert got["Body"].read() == data
        assert s3.head_object(Bucket=abucket, Key=key, ChecksumMode="ENABLED")[name] == put[name]
        # Not for a range, nor without checksum mode; and the backend's own checksums never show.
        ranged = s3.get_object(Bucket=abucket, Key=key, ChecksumMode="ENABLED", Range="bytes=0-99")
        assert name not in ranged and ranged["Body"].read() == data[:100]
        # boto3 asks for checksums by default (response_checksum_validation=when_supported); a client that does not ask
        # gets none.
        quiet = client_for(gw, response_checksum_validation="when_required")
        assert name not in quiet.get_object(Bucket=abucket, Key=key)
        raw = backend.client().head_object(Bucket=abucket, Key=key)["Metadata"]
        assert "s3eg-checksum" in raw, (key, raw)


# ---------------------------------------------------------------------------------------------------------------
# Per-credential backend users: the backend's own ACLs keep working through the gateway


@pytest.mark.per_user_acls  # moto has one user and accepts any signature: runs on Ceph RGW, deselected on moto
def test_credential_mapped_to_its_own_backend_user(request, backend, tmp_path):
    """A credential mapped to a second Ceph user acts as that user: the first user's private bucket is denied to
    it by Ceph itself (nothing stored), its own bucket works, and the first user cannot read that one either."""
    second_access, second_secret = "SECONDUSER" + os.urandom(3).hex().upper(), "second-secret-" + os.urandom(8).hex()
    run(["radosgw-admin", "-c", str(backend.workdir / "ceph.conf"), "user", "create", "--uid=second-" + os.urandom(3).hex(),
         "--display-name=second", f"--access-key={second_access}", f"--secret={second_secret}"], os.environ.copy(), timeout=60)
    creds = {"credentials": [
        {"accessKey": "FIRSTCLIENT", "secretKey": "first-client-secret"},
        {"accessKey": "SECONDCLIENT", "secretKey": "second-client-secret",
         "backend": {"accessKey": second_access, "secretKey": second_secret}},
    ]}
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(creds))
    gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, tmp_path / "gw",
                            binary=request.getfixturevalue("gateway_binary"), name="two-users-gateway",
                            extra_env={"GATEWAY_PASSTHROUGH": "false", "ENCRYPTION_PASSWORD": PASSWORD,
                                       "GATEWAY_CREDENTIALS_FILE": str(path)})
    try:
        first = s3gw.make_client(gw.endpoint, "FIRSTCLIENT", "first-client-secret")
        second = s3gw.make_client(gw.endpoint, "SECONDCLIENT", "second-client-secret")
        with s3gw.temporary_bucket(first, "first") as mine, s3gw.temporary_bucket(second, "second") as theirs:
            first.put_object(Bucket=mine, Key="private", Body=b"first user's data")
            assert error_of(lambda: second.put_object(Bucket=mine, Key="intruder", Body=b"x")) == ("AccessDenied", 403)
            assert error_of(lambda: second.get_object(Bucket=mine, Key="private")) == ("AccessDenied", 403)
            assert not stored(backend, mine, "intruder")
            second.put_object(Bucket=theirs, Key="own", Body=b"second user's data")
            assert second.get_object(Bucket=theirs, Key="own")["Body"].read() == b"second user's data"
            assert error_of(lambda: first.get_object(Bucket=theirs, Key="own")) == ("AccessDenied", 403)
    finally:
        code = gw.terminate()
        assert code == 0, f"gateway exited with {code}; log tail:\n{gw.log_tail()}"
