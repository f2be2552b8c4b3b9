#!/usr/bin/env python3
"""Encryption overhead: single-stream PUT and GET of one large object through the gateway WITH encryption vs
through a gateway in pass-through mode (GATEWAY_PASSTHROUGH=true), both in front of the same fast backend (nginx
with WebDAV PUT), in one run.

  python3 bench/encrypted.py [--size-mib 1024] [--repeat 5] [--cipher aes-256-gcm|chacha20-poly1305]

Prints MiB/s per path (median of interleaved runs) and the ratios encrypted/pass-through (target >= 0.70).

nginx stores bodies but not request headers, so on its own it would serve the encrypted object without its
`x-amz-meta-s3eg-*` metadata (and the gateway would pass the ciphertext through as a plain object). The bench
therefore logs the metadata headers of the encrypted PUTs (an nginx access log of just those headers) and, before
the GETs, reloads nginx with `add_header` lines that return the last PUT's metadata for that one URL, so the
encrypted GETs really verify and decrypt. Reuses nginx start-up and the curl measurement of bench/passthrough.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE))

import passthrough  # noqa: E402
import s3gw  # noqa: E402

META_FIELDS = ["version", "cipher", "chunk-size", "provider", "key-id", "ik", "wrapped-key", "layout", "salt", "etag", "checksum",
               "mac"]

# The pass-through bench's nginx, plus: a log of the encrypted PUTs' metadata headers, and an include for the
# location that serves them back.
_LOG_FORMAT = ("    log_format s3eg escape=json '{{\"method\":\"$request_method\",\"uri\":\"$uri\",\"status\":\"$status\""
               + "".join(f",\"{f}\":\"$http_x_amz_meta_s3eg_{f.replace('-', '_')}\"" for f in META_FIELDS)
               + "}}';\n    access_log {dir}/meta.log s3eg;\n")
NGINX_CONF = (passthrough.NGINX_CONF
              .replace("    access_log off;\n", _LOG_FORMAT)
              .replace("        location / {{\n", "        include {dir}/meta.conf;\n        location / {{\n", 1))
assert NGINX_CONF != passthrough.NGINX_CONF and "meta.conf" in NGINX_CONF, "bench/passthrough.py's nginx.conf changed"


def serve_metadata(ndir: Path, nginx: subprocess.Popen, endpoint: str, uri: str) -> None:
    """Reload nginx so `uri` answers with the metadata of its last successful PUT."""
    entries = [json.loads(line) for line in (ndir / "meta.log").read_text().splitlines() if line.strip()]
    puts = [e for e in entries if e["method"] == "PUT" and e["uri"] == uri and e["status"] in ("201", "204")]
    if not puts or not puts[-1]["version"]:
        raise s3gw.HarnessError(f"no encrypted PUT of {uri} in the nginx log (is encryption on?)")
    last = puts[-1]
    lines = [f"location = {uri} {{", "    dav_methods PUT DELETE;", "    create_full_put_path on;"]
    lines += [f'    add_header x-amz-meta-s3eg-{f} "{last[f]}" always;' for f in META_FIELDS if last[f]]
    lines.append("}")
    (ndir / "meta.conf").write_text("\n".join(lines) + "\n")
    nginx.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, headers, _ = s3gw.http_request("HEAD", endpoint + uri, timeout=2)
        if status == 200 and headers.get("x-amz-meta-s3eg-wrapped-key") == last["wrapped-key"]:
            return
        time.sleep(0.1)
    raise s3gw.HarnessError("nginx did not pick up the metadata after a reload")


def measure_pair(op: str, method: str, plain: tuple, enc: tuple, src: Path | None, repeat: int) -> tuple[float, float]:
    """Alternates pass-through and encrypted transfers (plain, enc, plain, enc, ...) so load from other processes
    on a shared machine hits both sides alike; returns the medians in MiB/s."""
    speeds: dict[str, list[float]] = {"pass-through": [], "encrypted": []}
    for _ in range(repeat):
        for label, (url, access, secret) in (("pass-through", plain), ("encrypted", enc)):
            speed, code = passthrough.curl(method, url, access, secret, src)
            if code not in (200, 201, 204):
                raise s3gw.HarnessError(f"{op} {label}: HTTP {code} from {url}")
            speeds[label].append(speed)
    out = []
    for label, values in speeds.items():
        med = statistics.median(values)
        print(f"  {op} {label:<13} {med:9.1f} MiB/s   (runs: {', '.join(f'{v:.0f}' for v in values)})", flush=True)
        out.append(med)
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", "1024")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    parser.add_argument("--cipher", default=os.environ.get("BENCH_CIPHER", "aes-256-gcm"))
    args = parser.parse_args()
    size = args.size_mib << 20

    workdir = passthrough.pick_workdir(size)
    ndir = workdir / "nginx"
    ndir.mkdir(parents=True, exist_ok=True)
    (ndir / "meta.conf").write_text("")
    passthrough.NGINX_CONF = NGINX_CONF  # start_nginx formats the module's template
    nginx = None
    gateways: list[s3gw.Gateway] = []
    try:
        nginx, backend, *_ = passthrough.start_nginx(workdir)  # (proc, endpoint[, nginx proxy endpoint])
        plain = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-plain", require_ready=False,
                                   extra_env={"GATEWAY_PASSTHROUGH": "true", "LOG_LEVEL": "warn"}, name="gateway-plain")
        gateways.append(plain)
        enc = s3gw.start_gateway(backend, "BENCHKEY", "bench-backend-secret", workdir / "gw-enc", require_ready=False,
                                 extra_env={"GATEWAY_PASSTHROUGH": "false", "LOG_LEVEL": "warn",
                                            "ENCRYPTION_CIPHER": args.cipher},
                                 name="gateway-enc")
        gateways.append(enc)
        src = workdir / "object.bin"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        print(f"bench: {args.size_mib} MiB object, single stream, median of {args.repeat}; nginx {backend}; "
              f"gateways {plain.endpoint} (pass-through), {enc.endpoint} (encrypted, {args.cipher}); data in {workdir}",
              flush=True)
        plain_url, enc_url = f"{plain.endpoint}/bench/plain", f"{enc.endpoint}/bench/enc"
        plain_side = (plain_url, plain.access_key, plain.secret_key)
        enc_side = (enc_url, enc.access_key, enc.secret_key)
        put_plain, put_enc = measure_pair("PUT", "PUT", plain_side, enc_side, src, args.repeat)
        stored = (ndir / "data" / "bench" / "enc").stat().st_size
        expected = size + 16 * max(1, -(-size // 65536))
        if stored != expected:
            raise s3gw.HarnessError(f"stored encrypted object has {stored} bytes, expected {expected} (ciphertext)")
        serve_metadata(ndir, nginx, backend, "/bench/enc")
        get_plain, get_enc = measure_pair("GET", "GET", plain_side, enc_side, None, args.repeat)
        # One checked download: the encrypted GET returned the plaintext, not the stored ciphertext.
        check = workdir / "check.bin"
        headers = s3gw.sigv4_headers("GET", enc_url, enc.access_key, enc.secret_key)
        cmd = ["curl", "-sS", "--http1.1", "-o", str(check), "-w", "%{http_code}"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(cmd + [enc_url], capture_output=True, text=True, timeout=600)
        if out.stdout != "200" or s3gw.sha256_file(check) != s3gw.sha256_file(src):
            raise s3gw.HarnessError(f"the encrypted GET did not return the plaintext (HTTP {out.stdout} {out.stderr})")
        check.unlink()
        print(f"  ratio PUT encrypted/pass-through: {put_enc / put_plain:.2f}   (target >= 0.70)")
        print(f"  ratio GET encrypted/pass-through: {get_enc / get_plain:.2f}   (target >= 0.70)")
        return 0
    except s3gw.HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        for gw in gateways:
            print(gw.log_tail(), file=sys.stderr)
        return 1
    finally:
        for gw in gateways:
            try:
                gw.terminate()
            except s3gw.HarnessError as exc:
                print(f"bench: {exc}", file=sys.stderr)
        passthrough.stop_nginx(nginx)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
