# One-command entry points. See README.md and docs/testing.md.
#
#   make run                 build, start moto + the gateway, run a short demo, serve until Ctrl-C
#   make run DEMO_ONLY=1     same, but exit after the demo
#   make test                install deps, build, swift test, integration suite on Ceph RGW and moto
#   make bench               pass-through throughput: nginx direct vs through the gateway
#   make bench-encrypted     encrypted vs pass-through gateway throughput
#   make bench-engine        in-process encryption engine vs openssl speed (interleaved rounds)
#   make bench-requests      4 KiB GETs (wrk): nginx, nginx proxy_pass, gateway pass-through and encrypting
#   make bench-puts          4 KiB and 1 MiB PUTs (wrk), with and without Content-MD5: nginx, gateway pass-through and encrypting
#   make bench-ranges        1 MiB ranged GETs of a 1 GiB encrypted object vs the same ranges from nginx direct and proxy_pass
#   make bench-concurrent    64 concurrent 16 MiB encrypted GETs vs nginx direct (aggregate MiB/s)
#   make bench-memory        encrypting gateway's RSS during and after bursts of large and small GETs
#   make bench-auth          1 GiB PUT: signed payload, aws-chunked and CRC32 trailer vs UNSIGNED-PAYLOAD
#   make bench-multipart     multipart: 1 GiB encrypted/pass-through, peak RSS of 8x512 MiB parts, requests per ranged GET
#   make bench-listing       listing 1000 multipart objects: encrypting (cold/warm size cache) vs pass-through
#   make bench-operator      1000 EncryptionGateways on a real kube-apiserver: convergence time, requests, memory
#   make run-operator        the operator reconciling config/samples/minimal.yaml on a real kube-apiserver
#   make dist                render dist/install.yaml from config/default (one-file install)
#   make docs                regenerate docs/configuration.md from the binaries' --help and the CRD
#   make images              build both images' binaries and root filesystems without Docker (scripts/imagetest.py)
#   make bench-keys          4 KiB PUT/GET per key provider vs a raw key, with and without the key cache
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# A venv made by scripts/deps.sh (only when python3 lacks a package) takes precedence.
export PATH := $(CURDIR)/.work/venv/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help run test bench bench-encrypted bench-engine bench-auth bench-multipart bench-listing bench-requests bench-puts bench-ranges bench-concurrent bench-memory bench-operator bench-keys deps-run deps-test deps-bench build-release build-debug swift-test integration \
	run-operator dist docs images

help:
	@sed -n '/^#   make /s/^#  //p' Makefile

deps-run:
	@scripts/deps.sh run
deps-test:
	@scripts/deps.sh test
deps-bench:
	@scripts/deps.sh bench

build-release:
	swift build -c release --product s3-encryption-gateway
	swift build -c release --product encryption-gateway-operator

build-debug:
	swift build --build-tests

run: deps-run build-release
	@python3 scripts/run.py $(if $(DEMO_ONLY),--demo-only,)

test: deps-test
	@scripts/test.sh

# Unit tests only (with .work/venv on PATH, which the KMIP, CEL and botocore tests need);
# e.g. make swift-test SWIFT_TEST_ARGS='--filter ProxyEnvironment'
swift-test: build-debug
	swift test --skip-build $(SWIFT_TEST_ARGS)

# Integration suite only (assumes a release build); e.g. make integration PYTEST_ARGS='-k auth'
integration:
	GATEWAY_BIN="$$(swift build -c release --show-bin-path)/s3-encryption-gateway" \
		python3 -m pytest Tests/Integration $(PYTEST_ARGS)

bench: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/passthrough.py

bench-encrypted: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/encrypted.py

bench-multipart: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/multipart.py $(BENCH_ARGS)

bench-engine: build-release
	@bench/engine.sh

bench-auth: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/auth_put.py $(BENCH_ARGS)

bench-listing: deps-test build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/listing.py $(BENCH_ARGS)

bench-requests: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/request_rate.py $(BENCH_ARGS)

bench-puts: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/put_rate.py $(BENCH_ARGS)

bench-ranges: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/ranges.py $(BENCH_ARGS)

bench-concurrent: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/concurrent_gets.py $(BENCH_ARGS)

bench-memory: deps-bench build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/memory.py $(BENCH_ARGS)

bench-operator: deps-test
	@scripts/kube-build.sh >/dev/null
	swift build -c release --product encryption-gateway-operator
	@OPERATOR_BIN="$$(swift build -c release --show-bin-path)/encryption-gateway-operator" python3 bench/operator.py $(BENCH_ARGS)

run-operator: deps-test
	@scripts/kube-build.sh >/dev/null
	swift build -c release --product encryption-gateway-operator
	@python3 scripts/run_operator.py $(if $(DEMO_ONLY),--demo-only,)

dist:
	@scripts/dist.sh

docs: build-release build-debug
	@python3 scripts/gen_reference.py

images:
	@python3 scripts/imagetest.py prepare

# The key managers come from the test dependencies (PyKMIP, moto, the Vault Transit double); Ceph RGW is the backend.
bench-keys: deps-test build-release
	@GATEWAY_BIN="$${GATEWAY_BIN:-$$(swift build -c release --show-bin-path)/s3-encryption-gateway}" python3 bench/keys.py $(BENCH_ARGS)
