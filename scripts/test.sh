#!/usr/bin/env bash
# `make test`: build, swift test, the operator against a real kube-apiserver, then the integration suite (Ceph RGW
# and moto backends, real gateway binary).
# Every phase runs even if an earlier one failed, so one CI log shows everything; the exit code is non-zero
# if any phase failed. Phase durations are printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

export CI=${CI:-}
failed=()
timings=()

phase() {
    local name=$1; shift
    local start=$SECONDS rc
    echo
    echo "==> $name: $*"
    "$@"
    rc=$?
    timings+=("$(printf '%-36s %4ss  %s' "$name" $((SECONDS - start)) "$([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")")")
    [[ $rc == 0 ]] || failed+=("$name")
    return $rc
}

phase "build (debug+tests)" swift build --build-tests
built=$((${#failed[@]} == 0))
# The operator's `Cluster…` suites need a real control plane; they run in their own phase below.
if ((built)); then
    phase "swift test" swift test --skip-build --skip 'OperatorTests\.Cluster'
else
    timings+=("swift test             skipped (build failed)"); failed+=("swift test")
fi
# kube-apiserver + kube-controller-manager 1.20.2 from Debian's source package: built once into ~/.cache
# (about 7-12 minutes on a fresh 2-core machine), then reused.
phase "kube-apiserver (cached)" scripts/kube-build.sh
if ((built)) && scripts/kube-build.sh --check; then
    phase "operator e2e (real kube-apiserver)" swift test --skip-build --filter 'OperatorTests\.Cluster'
else
    timings+=("operator e2e           skipped (no build or no kube-apiserver)"); failed+=("operator e2e")
fi
phase "build (release)" swift build -c release --product s3-encryption-gateway
bin_dir=$(swift build -c release --show-bin-path)
read -ra pytest_args <<<"${PYTEST_ARGS:-}"  # e.g. PYTEST_ARGS='-k auth -x'
# Always through the gateway and on both backends: an exported S3GW_TARGET=backend (the by-hand mode that checks
# the harness) or a shorter S3GW_BACKENDS must not turn this run's gateway tests into skips or drop a backend.
S3GW_TARGET=gateway S3GW_BACKENDS=ceph,moto GATEWAY_BIN="$bin_dir/s3-encryption-gateway" phase "integration (pytest)" \
    python3 -m pytest Tests/Integration --durations=10 "${pytest_args[@]}"
# Dockerfile.proxy and Dockerfile.operator built and run without a Docker engine (scripts/imagetest.py).
phase "images (pytest)" python3 -m pytest Tests/Image --durations=5
# compose file, CI workflow, lint, monitoring rules, install bundle, ArgoCD health check, generated docs.
GATEWAY_BIN="$bin_dir/s3-encryption-gateway" phase "shipping (pytest)" python3 -m pytest Tests/Shipping --durations=5

echo
echo "==> phase durations"
printf '    %s\n' "${timings[@]}"
if ((${#failed[@]})); then
    echo "make test: FAILED: ${failed[*]}"
    exit 1
fi
echo "make test: all phases passed"
