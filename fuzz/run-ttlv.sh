#!/bin/sh
# Builds the KMIP TTLV decoder with libFuzzer + AddressSanitizer and fuzzes it for SECONDS
# (default 60). Crashes land in fuzz/ttlv/artifacts/.
#   fuzz/run-ttlv.sh 300
set -eu
SECONDS_TO_RUN="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.build/fuzz"
mkdir -p "$OUT" "$ROOT/fuzz/ttlv/artifacts"
WORK_CORPUS="$OUT/ttlv-corpus"
mkdir -p "$WORK_CORPUS"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name TTLVFuzz \
    "$ROOT/Sources/Proxy/Keys/KMIP/TTLV.swift" \
    "$ROOT/fuzz/ttlv/TTLVFuzzer.swift" \
    -o "$OUT/ttlv"
exec "$OUT/ttlv" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 \
    -artifact_prefix="$ROOT/fuzz/ttlv/artifacts/" "$WORK_CORPUS" "$ROOT/fuzz/ttlv/corpus"
