#!/bin/sh
# Builds the aws-chunked decoder with libFuzzer + AddressSanitizer and fuzzes it for RUNS inputs
# (default 1000000). Crashes land in fuzz/aws-chunked/artifacts/.
#   fuzz/run-aws-chunked.sh 5000000
set -eu
RUNS="${1:-1000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.build/fuzz"
mkdir -p "$OUT" "$ROOT/fuzz/aws-chunked/artifacts"
WORK_CORPUS="$OUT/aws-chunked-corpus"
mkdir -p "$WORK_CORPUS"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name AWSChunkedFuzz \
    "$ROOT/Sources/Proxy/Payload/AWSChunkedDecoder.swift" \
    "$ROOT/fuzz/aws-chunked/AWSChunkedFuzzer.swift" \
    -o "$OUT/aws-chunked"
exec "$OUT/aws-chunked" -runs="$RUNS" -max_len=2048 \
    -artifact_prefix="$ROOT/fuzz/aws-chunked/artifacts/" "$WORK_CORPUS" "$ROOT/fuzz/aws-chunked/corpus"
