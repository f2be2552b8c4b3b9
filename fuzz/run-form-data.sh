#!/bin/sh
# Builds the POST Object form parser (multipart/form-data) with libFuzzer + AddressSanitizer and fuzzes it for RUNS
# inputs (default 1000000). Crashes land in fuzz/form-data/artifacts/.
#   fuzz/run-form-data.sh 5000000
set -eu
RUNS="${1:-1000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.build/fuzz"
mkdir -p "$OUT" "$ROOT/fuzz/form-data/artifacts"
WORK_CORPUS="$OUT/form-data-corpus"
mkdir -p "$WORK_CORPUS"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name FormDataFuzz \
    "$ROOT/Sources/Proxy/Payload/MultipartFormData.swift" \
    "$ROOT/fuzz/form-data/FormDataFuzzer.swift" \
    -o "$OUT/form-data"
exec "$OUT/form-data" -runs="$RUNS" -max_len=1024 \
    -artifact_prefix="$ROOT/fuzz/form-data/artifacts/" "$WORK_CORPUS" "$ROOT/fuzz/form-data/corpus"
