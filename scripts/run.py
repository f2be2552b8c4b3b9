#!/usr/bin/env python3
"""`make run`: moto's S3 server as the backend, the gateway in front of it, a short demo, then serve until Ctrl-C.

  python3 scripts/run.py [--demo-only]

Environment: GATEWAY_BIN (default: the release build), GATEWAY_PASSTHROUGH (default false: the gateway encrypts;
true stores objects unencrypted), LOG_LEVEL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import s3gw  # noqa: E402

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def say(text: str = "") -> None:
    print(text, flush=True)


def show_cmd(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    say(f"{BOLD}$ {' '.join(shlex.quote(c) for c in cmd)}{RESET}")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    for line in (out.stdout + out.stderr).rstrip().splitlines():
        say(f"  {line}")
    if out.returncode != 0:
        raise s3gw.HarnessError(f"demo step failed (exit {out.returncode}): {' '.join(cmd)}")
    return out


def demo(gw: s3gw.Gateway, backend: s3gw.Backend, workdir: Path, passthrough: bool) -> None:
    env = s3gw.clean_client_env({"AWS_ACCESS_KEY_ID": gw.access_key, "AWS_SECRET_ACCESS_KEY": gw.secret_key})
    aws = ["aws", "--endpoint-url", gw.endpoint]
    plain = workdir / "hello.txt"
    plain.write_bytes(b"Hello from the S3 encryption gateway demo.\n" * 64 + os.urandom(1024).hex().encode())
    back = workdir / "hello.back.txt"
    say(f"\n{BOLD}== Demo: a client talks S3 to the gateway with the gateway's own credentials{RESET}")
    show_cmd(aws + ["s3", "mb", "s3://demo-bucket"], env)
    show_cmd(aws + ["s3", "cp", "--only-show-errors", str(plain), "s3://demo-bucket/hello.txt"], env)
    show_cmd(aws + ["s3", "cp", "--only-show-errors", "s3://demo-bucket/hello.txt", str(back)], env)
    same = plain.read_bytes() == back.read_bytes()
    say(f"  read back {back.stat().st_size} bytes; identical to the uploaded file: {same}")
    if not same:
        raise s3gw.HarnessError("the object read back through the gateway differs from the uploaded file")
    show_cmd(aws + ["s3", "ls", "s3://demo-bucket/"], env)

    say(f"\n{BOLD}== What the backend (moto at {backend.endpoint}) holds, read directly with the backend's keys"
        f"{RESET}")
    raw = backend.client().get_object(Bucket="demo-bucket", Key="hello.txt")
    stored = raw["Body"].read()
    say(f"  size on the backend: {len(stored)} bytes (plaintext: {plain.stat().st_size} bytes)")
    say(f"  first 64 bytes: {stored[:64]!r}")
    say(f"  sha256 backend: {hashlib.sha256(stored).hexdigest()}")
    say(f"  sha256 plain:   {hashlib.sha256(plain.read_bytes()).hexdigest()}")
    if stored == plain.read_bytes():
        if not passthrough:
            raise s3gw.HarnessError("the backend holds the plaintext although the gateway runs with encryption on")
        say("  -> the backend holds the plaintext (pass-through mode)")
    elif b"Hello from the S3 encryption gateway demo." in stored:
        raise s3gw.HarnessError("plaintext found inside the stored object")
    else:
        say("  -> the backend holds ciphertext: no plaintext in it, 16 bytes of tag per 64 KiB chunk")
    meta = {k: v for k, v in raw["ResponseMetadata"]["HTTPHeaders"].items() if k.startswith("x-amz-meta-")}
    if meta:
        say(f"  backend object metadata: {meta}")


def operator_preview(workdir: Path) -> None:
    """The other half: what the operator would deploy for config/samples/minimal.yaml (`render`, no cluster), and
    how to watch it reconcile on a real kube-apiserver (`make run-operator`)."""
    binary = s3gw.release_bin_dir() / "encryption-gateway-operator"
    sample = s3gw.REPO / "config" / "samples" / "minimal.yaml"
    say(f"\n{BOLD}The operator's half: what it would deploy for {sample.relative_to(s3gw.REPO)}{RESET}")
    if not binary.exists():
        say(f"run: {binary} not found (`make run` builds it)")
        return
    version = re.search(r'version = "([^"]+)"', (s3gw.REPO / "Sources/Shared/BuildInfo.swift").read_text()).group(1)
    cmd = [str(binary), "render", "-f", str(sample), "--gateway-image", f"s3-encryption-gateway/gateway:{version}"]
    say("$ encryption-gateway-operator render -f config/samples/minimal.yaml")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        say(f"run: render failed ({out.returncode}):\n{out.stderr}")
        return
    rendered = workdir / "operator-render.yaml"
    rendered.write_text(out.stdout)
    for document in out.stdout.split("\n---"):
        kind = re.search(r"^kind: (\S+)", document, re.M)
        name = re.search(r"^  name: (\S+)", document, re.M)
        if kind and name:
            say(f"  {kind.group(1):<22} {name.group(1)}")
    say(f"(the full objects, as the operator would apply them: {rendered})")
    built = subprocess.run([str(s3gw.SCRIPTS / "kube-build.sh"), "--check"], capture_output=True).returncode == 0
    if built:
        say("A real kube-apiserver is built on this machine: `make run-operator` installs the operator on it and "
            "shows this EncryptionGateway reconciled into these children, live.")
    else:
        say("`make run-operator` builds a real kube-apiserver first (about 7 minutes, cached), installs the operator "
            "on it and shows this EncryptionGateway reconciled into these children, live.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-only", action="store_true", help="exit after the demo")
    args = parser.parse_args()

    for tool in ("aws", "moto_server"):
        if not shutil.which(tool):
            say(f"run: {tool} not found; `make run` installs it (scripts/deps.sh run)")
            return 1
    workdir = s3gw.REPO / ".work" / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    passthrough = os.environ.get("GATEWAY_PASSTHROUGH", "false").lower() == "true"

    backend = gw = None
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    try:
        say("run: starting moto's S3 server (backend) ...")
        backend = s3gw.MotoBackend.start(workdir / "moto")
        say(f"run: backend ready at {backend.endpoint}")
        say(f"run: starting the gateway ({s3gw.gateway_bin()}) ...")
        gw = s3gw.start_gateway(backend.endpoint, backend.access_key, backend.secret_key, workdir,
                                extra_env={"GATEWAY_PASSTHROUGH": "true" if passthrough else "false",
                                           "LOG_LEVEL": os.environ.get("LOG_LEVEL", "info")})
        say(f"\n{BOLD}Gateway ready at {gw.endpoint}{RESET}  (health: {gw.endpoint}/health, "
            f"metrics: {gw.endpoint}/metrics, JSON log: {gw.log_path})")
        say(f"Backend: moto at {backend.endpoint}; GATEWAY_PASSTHROUGH={'true' if passthrough else 'false'}")
        say("\nPaste into another shell:")
        say(f"  export AWS_ACCESS_KEY_ID={gw.access_key}")
        say(f"  export AWS_SECRET_ACCESS_KEY={shlex.quote(gw.secret_key)}")
        say(f"  export AWS_DEFAULT_REGION={s3gw.REGION}")
        say(f"  aws --endpoint-url {gw.endpoint} s3 ls")
        say(f"  aws --endpoint-url {gw.endpoint} s3 mb s3://my-bucket")
        say(f"  aws --endpoint-url {gw.endpoint} s3 cp ./README.md s3://my-bucket/README.md")
        say(f"  aws --endpoint-url {gw.endpoint} s3 cp s3://my-bucket/README.md -")

        demo(gw, backend, workdir, passthrough)
        operator_preview(workdir)

        if args.demo_only:
            say("\nrun: demo done (--demo-only); stopping")
            return 0
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        say(f"\n{BOLD}Serving. Press Ctrl-C to stop the gateway and the backend.{RESET}")
        while not stopping:
            if gw.proc.poll() is not None:
                say(f"run: the gateway exited with code {gw.proc.returncode}; log tail:\n{gw.log_tail()}")
                return 1
            time.sleep(0.5)
        say("\nrun: stopping")
        return 0
    except s3gw.HarnessError as exc:
        say(f"run: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\nrun: interrupted; stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if backend is not None:
            backend_to_stop.append(backend)
        if gw is not None:
            gateway_to_stop.append(gw)


def stop_all() -> int:
    """Stop what main() started; non-zero when the gateway did not exit cleanly on SIGTERM."""
    rc = 0
    for gw in gateway_to_stop:
        try:
            code = gw.terminate()
        except s3gw.HarnessError as exc:
            say(f"run: {exc}")
            code = -1
        say(f"run: gateway stopped (exit code {code})")
        rc = rc or (1 if code != 0 else 0)
    for backend in backend_to_stop:
        backend.stop()
        say("run: backend stopped")
    return rc


gateway_to_stop: list[s3gw.Gateway] = []
backend_to_stop: list[s3gw.Backend] = []


if __name__ == "__main__":
    rc = main()
    sys.exit(stop_all() or rc)
