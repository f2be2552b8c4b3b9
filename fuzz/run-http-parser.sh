#!/bin/sh
# Builds the HTTP request parser with libFuzzer + AddressSanitizer and fuzzes it
# for SECONDS (default 60). Crashes land in fuzz/http-parser/artifacts/.
#   fuzz/run-http-parser.sh 300
set -eu
SECONDS_TO_RUN="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.build/fuzz"
mkdir -p "$OUT" "$ROOT/fuzz/http-parser/artifacts"
WORK_CORPUS="$OUT/http-parser-corpus"
mkdir -p "$WORK_CORPUS"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name HTTPParserFuzz \
    "$ROOT/Sources/Shared/HTTPServer/HTTPRequestParser.swift" \
    "$ROOT/Sources/Shared/HTTPServer/HTTPMessage.swift" \
    "$ROOT/fuzz/http-parser/HTTPParserFuzzer.swift" \
    -o "$OUT/http-parser"
exec "$OUT/http-parser" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 \
    -artifact_prefix="$ROOT/fuzz/http-parser/artifacts/" "$WORK_CORPUS" "$ROOT/fuzz/http-parser/corpus"
