#!/usr/bin/env python3
"""Builds and runs the container images without a Docker engine, from what the Dockerfiles say.

* The binary: the build stage's `swift build … --product X` runs in a staged copy of the build context (only what
  the stage's COPY instructions copy, after .dockerignore), under `.build-image/` in the repository.
* The root filesystem: a Debian bookworm minbase tree made by mmdebstrap with the apt settings of the official
  `debian:bookworm-slim` image, then the runtime stage's RUN lines replayed in it as root (bubblewrap, with the
  network, as `docker build` does). Cached outside the repository (`$S3GW_IMAGE_CACHE`, default
  /var/cache/s3gw-images), keyed by a hash of everything that makes it; a fresh machine builds it again.
* A container: bubblewrap with the root filesystem mounted read-only at /, the binary at its COPY destination,
  the Dockerfile's ENV, running as the Dockerfile's numeric USER for real (setpriv outside, a user namespace
  mapping the same uid inside), no capabilities, its own PID namespace, the host's network (loopback tests).

Needs root (mmdebstrap and the RUN replay), mmdebstrap, bubblewrap and setpriv; scripts/deps.sh installs them.

  scripts/imagetest.py prepare [Dockerfile.proxy Dockerfile.operator]   build binaries and root filesystems
  scripts/imagetest.py run Dockerfile.proxy [-e K=V …] -- ARGS…         run the image's entrypoint with ARGS
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockerfile import Dockerfile, DockerfileError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("S3GW_IMAGE_CACHE", "/var/cache/s3gw-images"))
STAGING = REPO / ".build-image"
SUITE = "bookworm"
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
# The official image's apt and dpkg settings (debuerreotype's "slim" variant): no docs, man pages or locales,
# no .deb or pkgcache left behind after an install.
SLIM_DPKG_EXCLUDES = ["path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                      "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                      "path-exclude=/usr/share/info/*"]
SLIM_APT_CONF = """\
// As in the official debian:bookworm-slim image: no package caches left in the filesystem.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
"""
RECIPE = 2  # bump when the way a root filesystem is made changes
DOCKER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(RuntimeError):
    """A step of building or running an image failed; the message says which and why."""


def log(message: str) -> None:
    print(f"imagetest: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock so two test runs never build the same tree at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def require_tools() -> None:
    if os.geteuid() != 0:
        raise ImageError("the image tests need root (mmdebstrap and the RUN replay); CI and `make test` run as root")
    missing = [t for t in ("mmdebstrap", "bwrap", "setpriv") if shutil.which(t) is None]
    if missing:
        raise ImageError(f"missing {', '.join(missing)}: scripts/deps.sh test installs mmdebstrap and bubblewrap")


# ------------------------------------------------------------------------------------------------------------------
# Root filesystems


def _base_key() -> str:
    return _digest(RECIPE, SUITE, MIRRORS, SLIM_DPKG_EXCLUDES, SLIM_APT_CONF)


def base_rootfs() -> Path:
    """bookworm minbase with the slim image's settings: what `FROM debian:bookworm-slim` starts from."""
    key = _base_key()
    target = CACHE / f"base-{key}"
    with locked(CACHE / f"base-{key}.lock"):
        if (target / "etc" / "debian_version").exists():
            return target
        tmp = CACHE / f"base-{key}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"building the bookworm base root filesystem in {target} (mmdebstrap, about a minute)")
        started = time.monotonic()
        command = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
                   "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", "--aptopt=Acquire::Languages \"none\""]
        command += [f"--dpkgopt={opt}" for opt in SLIM_DPKG_EXCLUDES]
        command += [SUITE, str(tmp), *MIRRORS]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImageError(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-4000:]}")
        (tmp / "etc/apt/apt.conf.d/docker-clean").write_text(SLIM_APT_CONF)
        # Docker mounts these three over every container; they exist as (empty) mount points.
        for name in ("hosts", "resolv.conf", "hostname"):
            (tmp / "etc" / name).write_text("")
        for leftover in (tmp / "var/lib/apt/lists").glob("*"):
            if leftover.is_file():
                leftover.unlink()
        tmp.rename(target)
        log(f"base root filesystem ready in {time.monotonic() - started:.0f}s")
        return target


@dataclass
class RootFS:
    path: Path
    packages: list[str]  # what the runtime stage's apt-get install named, as recorded when the tree was made

    @property
    def manifest(self) -> Path:
        return self.path.with_name(self.path.name + ".json")


def image_rootfs(df: Dockerfile) -> RootFS:
    """The base plus the runtime stage's RUN lines, replayed as root with the network, as `docker build` does."""
    if df.final.base != f"debian:{SUITE}-slim":
        raise ImageError(f"{df.path.name}: the runtime stage must start FROM debian:{SUITE}-slim "
                         f"(the tests build that), not {df.final.base}")
    base = base_rootfs()
    scripts = df.runtime_run_scripts()
    key = _digest(base.name, scripts)
    target = CACHE / f"rootfs-{key}"
    manifest = target.with_name(target.name + ".json")
    with locked(CACHE / f"rootfs-{key}.lock"):
        if not manifest.exists():
            tmp = CACHE / f"rootfs-{key}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            log(f"replaying the runtime stage of {df.path.name} in {target}")
            started = time.monotonic()
            subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(tmp)], check=True)
            for script in scripts:
                result = subprocess.run(
                    ["bwrap", "--bind", str(tmp), "/", "--dev", "/dev", "--proc", "/proc",
                     "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf", "--cap-add", "ALL", "--unshare-pid",
                     "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--clearenv",
                     "--setenv", "PATH", DOCKER_PATH, "--setenv", "HOME", "/root",
                     "--setenv", "DEBIAN_FRONTEND", "noninteractive", "--chdir", "/",
                     "--", "/bin/sh", "-c", script],
                    stdin=subprocess.DEVNULL, capture_output=True, text=True)
                if result.returncode != 0:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise ImageError(f"{df.path.name}: RUN failed ({result.returncode}): {script}\n"
                                     f"{(result.stdout + result.stderr)[-4000:]}")
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
            manifest.write_text(json.dumps({"dockerfile": df.path.name, "base": base.name, "run": scripts,
                                            "packages": df.runtime_packages()}, indent=2) + "\n")
            log(f"root filesystem for {df.path.name} ready in {time.monotonic() - started:.0f}s")
    os.utime(manifest)  # marks it used, for prune()
    return RootFS(target, json.loads(manifest.read_text())["packages"])


def prune(keep: int = 6) -> None:
    """Removes trees made from an older base recipe and the least recently used image trees beyond `keep`
    (older Dockerfile versions). Lock files stay: removing one another run may be waiting on is a race."""
    current = f"base-{_base_key()}"

    def remove(tree: Path) -> None:
        with locked(CACHE / f"{tree.name}.lock"):
            shutil.rmtree(tree, ignore_errors=True)
            tree.with_name(tree.name + ".json").unlink(missing_ok=True)

    for tree in CACHE.glob("base-*"):
        if tree.is_dir() and tree.name != current:
            remove(tree)
    manifests = sorted(CACHE.glob("rootfs-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for index, manifest in enumerate(manifests):
        if index >= keep or json.loads(manifest.read_text()).get("base") != current:
            remove(manifest.with_suffix(""))


# ------------------------------------------------------------------------------------------------------------------
# Binaries


def _glob_segment(segment: str) -> str:
    """One path segment of a Go filepath.Match pattern as a regular expression (`*` and `?` stop at `/`)."""
    out, i = "", 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and "]" in segment[i + 1:]:
            end = segment.index("]", i + 1)
            body = segment[i + 1:end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    """.dockerignore lines as (is-exception, regex); a pattern also matches everything under what it names."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        segments = os.path.normpath(line.lstrip("!").strip().strip("/")).split("/")
        regex = ""
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            if segment == "**":
                regex += ".*" if last else "(?:[^/]+/)*"
            else:
                regex += _glob_segment(segment) + ("" if last else "/")
        rules.append((negate, re.compile(regex + r"(?:/.*)?\Z")))
    return rules


def _dockerignore() -> list[tuple[bool, re.Pattern]]:
    path = REPO / ".dockerignore"
    return dockerignore_rules(path.read_text() if path.exists() else "")


def ignored(relative: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's .dockerignore decision for a context path: the last matching rule wins."""
    result = False
    for negate, regex in rules:
        if regex.match(relative):
            result = not negate
    return result


def stage_context(df: Dockerfile) -> Path:
    """Copies what the build stage's COPY instructions copy (after .dockerignore) into .build-image/<stage>/src,
    keeping modification times so SwiftPM's incremental build works; files gone from the repo are removed."""
    build = df.stages[0]
    workdir = build.last("WORKDIR")
    if workdir is None or not workdir.text.startswith("/"):
        raise ImageError(f"{df.path.name}: the build stage needs an absolute WORKDIR")
    copies = []
    for ins in build.all("COPY"):
        words = ins.text.split()
        if any(w.startswith("--") for w in words) or len(words) != 2:
            raise ImageError(f"{df.path.name} line {ins.line}: the build stage may only `COPY SRC DEST`")
        copies.append((words[0], words[1]))
    root = STAGING / _digest(copies, workdir.text)
    src = root / "src"
    rules = _dockerignore()
    wanted: set[Path] = set()
    for source, dest in copies:
        origin = REPO / source
        if not origin.exists() or ignored(source.rstrip("/"), rules):
            raise ImageError(f"{df.path.name}: COPY {source}: not in the build context")
        files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            if ignored(rel, rules):
                continue
            if origin.is_file():
                out = (src / dest / f.name) if dest.endswith("/") else (src / dest)
            else:
                out = (src / dest) / f.relative_to(origin)
            out = Path(os.path.normpath(out))
            wanted.add(out)
            st = f.stat()
            if out.exists() and out.stat().st_size == st.st_size and out.stat().st_mtime_ns == st.st_mtime_ns:
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out)
    if src.exists():
        for p in sorted(src.rglob("*"), reverse=True):
            if p.relative_to(src).parts[0] == ".build":
                continue
            if p.is_file() and p not in wanted:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    return src


def _open_to_container_user(directory: Path) -> None:
    """Lets the container's unprivileged user reach `directory` (bwrap binds it as that user): every directory
    from the staging root down gets o+rx. A staging tree left by an interrupted run, or made under a strict umask,
    would otherwise fail every container start with bwrap's bare "Permission denied"."""
    chain = [directory, *directory.parents]
    for path in chain[:chain.index(STAGING) + 1]:
        mode = path.stat().st_mode
        if mode & 0o005 != 0o005:
            os.chmod(path, mode | 0o005)
    for ancestor in STAGING.parents:
        if ancestor.stat().st_mode & 0o001 == 0:
            raise ImageError(f"{ancestor} is not searchable by other users (mode "
                             f"{ancestor.stat().st_mode & 0o777:o}); the containers run as an unprivileged user "
                             f"and cannot reach the binary under {STAGING}: chmod o+x {ancestor}")


def build_binary(df: Dockerfile) -> tuple[Path, str]:
    """Runs the build stage's `swift build` command in the staged context; returns (binary, COPY destination)."""
    command = df.swift_build_command()
    product = command[command.index("--product") + 1]
    copies = df.runtime_copies()
    if len(copies) != 1 or Path(copies[0][1]).name != product:
        raise ImageError(f"{df.path.name}: the runtime stage must COPY exactly the built product {product}")
    src = stage_context(df)
    with locked(src.parent / "build.lock"):
        log(f"{' '.join(command)}  (in {src})")
        started = time.monotonic()
        result = subprocess.run(command, cwd=src, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageError(f"{df.path.name}: {' '.join(command)} failed:\n{(result.stdout + result.stderr)[-6000:]}")
        log(f"built {product} in {time.monotonic() - started:.0f}s")
        show = [w for w in command if w not in ("--product", product)] + ["--show-bin-path"]
        bin_dir = subprocess.run(show, cwd=src, capture_output=True, text=True, check=True).stdout.strip()
    binary = Path(bin_dir) / product
    # The container sees only this binary at its destination directory (bwrap binds a directory).
    exposed = src.parent / "bin" / product
    exposed.parent.mkdir(parents=True, exist_ok=True)
    _open_to_container_user(exposed.parent)
    tmp = exposed.with_suffix(".tmp")
    shutil.copy2(binary, tmp)
    os.chmod(tmp, 0o755)
    tmp.rename(exposed)
    return exposed, copies[0][2]


# ------------------------------------------------------------------------------------------------------------------
# Containers


@dataclass
class Image:
    """One Dockerfile made runnable: its binary, its root filesystem and its runtime settings."""

    dockerfile: Dockerfile
    rootfs: RootFS
    binary: Path
    destination: str  # where the COPY puts the binary, e.g. /usr/local/bin/s3-encryption-gateway

    @classmethod
    def prepare(cls, name: str) -> "Image":
        require_tools()
        try:
            df = Dockerfile.read(REPO / name)
            binary, destination = build_binary(df)
            rootfs = image_rootfs(df)
        except DockerfileError as exc:
            raise ImageError(f"{name}: {exc}") from None
        return cls(df, rootfs, binary, destination)

    @property
    def user(self) -> tuple[int, int]:
        return self.dockerfile.user()

    def command(self, args: list[str] | None = None, *, env: dict[str, str] | None = None,
                binds: list[tuple[str, str]] | None = None, entrypoint: list[str] | None = None,
                hide: list[str] | None = None) -> list[str]:
        """The argument vector that runs the container like `docker run --read-only --cap-drop=ALL`:
        ENTRYPOINT + (`args` or CMD), the Dockerfile's ENV plus `env`, `binds` as read-only (host, container)
        mounts, `hide` as paths replaced by an empty file (to show what a missing library does)."""
        uid, gid = self.user
        argv = (entrypoint if entrypoint is not None else self.dockerfile.entrypoint()) + \
            (args if args is not None else self.dockerfile.cmd())
        environment = {"PATH": DOCKER_PATH, "HOME": "/nonexistent", "HOSTNAME": "imagetest"}
        environment.update(self.dockerfile.env())
        environment.update(env or {})
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
                   "bwrap", "--unshare-user", "--uid", str(uid), "--gid", str(gid),
                   "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "imagetest",
                   "--die-with-parent", "--new-session",
                   "--ro-bind", str(self.rootfs.path), "/",
                   "--ro-bind", str(self.binary.parent), str(Path(self.destination).parent),
                   "--proc", "/proc", "--dev", "/dev",
                   "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf", "--ro-bind", "/etc/hosts", "/etc/hosts",
                   "--clearenv", "--chdir", "/"]
        for host, inside in binds or []:
            command += ["--ro-bind", host, inside]
        for path in hide or []:
            command += ["--ro-bind", "/dev/null", path]
        for k, v in environment.items():
            command += ["--setenv", k, v]
        return command + ["--", *argv]

    def run(self, args: list[str] | None = None, *, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(args, **kwargs), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, args: list[str] | None = None, *, stdout=None, stderr=None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(args, **kwargs), stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=stderr, start_new_session=True)

    def healthcheck(self, extra: list[str] | None = None, *, env: dict[str, str] | None = None,
                    timeout: float = 30) -> subprocess.CompletedProcess:
        """The HEALTHCHECK command (plus `extra` arguments), run like Docker runs it: in the container, with the
        container's environment."""
        _, command = self.dockerfile.healthcheck()
        return self.run(command[1:] + (extra or []), entrypoint=command[:1], env=env, timeout=timeout)

    def installed_packages(self) -> set[str]:
        out = subprocess.run(["dpkg-query", f"--admindir={self.rootfs.path}/var/lib/dpkg", "-W",
                              "-f", "${Package} ${db:Status-Status}\n"], capture_output=True, text=True, check=True)
        return {line.split()[0] for line in out.stdout.splitlines() if line.endswith(" installed")}

    def package_files(self, package: str) -> list[str]:
        out = subprocess.run(["dpkg-query", f"--admindir={self.rootfs.path}/var/lib/dpkg", "-L", package],
                             capture_output=True, text=True, check=True)
        return [line for line in out.stdout.splitlines() if line.startswith("/")]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("dockerfiles", nargs="*", default=["Dockerfile.proxy", "Dockerfile.operator"])
    run = sub.add_parser("run")
    run.add_argument("dockerfile")
    run.add_argument("-e", "--env", action="append", default=[], help="K=V, as docker run -e")
    args: list[str] = []
    if "--" in argv:  # everything after -- goes to the container (argparse mishandles -- after a subcommand)
        argv, args = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    options = parser.parse_args(argv)
    try:
        if options.verb == "prepare":
            for name in options.dockerfiles:
                image = Image.prepare(name)
                print(f"{name}: binary {image.binary} root filesystem {image.rootfs.path}")
            prune()
            return 0
        image = Image.prepare(options.dockerfile)
        env = dict(e.split("=", 1) for e in options.env)
        return subprocess.call(image.command(args or None, env=env))
    except ImageError as exc:
        print(f"imagetest: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
