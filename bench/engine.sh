#!/usr/bin/env bash
# Compares the gateway's chunked encryption engine with `openssl speed` on the same machine and
# run: both single-threaded over 64 KiB blocks, both divided by CPU time (openssl speed's default;
# the engine measures its thread's CPU time), so other load on the machine does not skew the ratio.
# Prints MiB/s and the ratios (target: engine / openssl >= 0.85).
# Usage: bench/engine.sh [--total-mib N] [--cipher AES-256-GCM|CHACHA20-POLY1305] [--chunk-size N]
# Needs the `bench-engine` subcommand of s3-encryption-gateway (runEngineBenchmark).
set -euo pipefail
cd "$(dirname "$0")/.."

cipher="aes-256-gcm"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[$i]}" == "--cipher" && $((i + 1)) -lt ${#args[@]} ]]; then
    cipher="$(printf '%s' "${args[$((i + 1))]}" | tr '[:upper:]' '[:lower:]')"
  fi
done

swift build -c release --product s3-encryption-gateway >/dev/null
bin="$(swift build -c release --show-bin-path)/s3-encryption-gateway"

openssl_out="$(openssl speed -evp "$cipher" -bytes 65536 -seconds 3 2>/dev/null)"
# Last line: "<CIPHER>  <n>k" where n is in thousands of bytes per second.
openssl_k="$(printf '%s\n' "$openssl_out" | tail -n 1 | awk '{v=$NF; sub(/k$/, "", v); print v}')"
openssl_mib="$(awk -v k="$openssl_k" 'BEGIN {printf "%.1f", k * 1000 / 1048576}')"

engine_out="$("$bin" bench-engine "$@")"
get() { printf '%s\n' "$engine_out" | awk -F= -v k="$1" '$1 == k {print $2}'; }
aead="$(get aead_seal_mib_s)"; seal="$(get engine_seal_mib_s)"; open="$(get engine_open_mib_s)"

echo "openssl speed ${cipher} 64 KiB : ${openssl_mib} MiB/s"
echo "AEADContext seal 64 KiB chunks   : ${aead} MiB/s"
echo "engine seal (ChunkSealer)        : ${seal} MiB/s"
echo "engine open (ChunkOpener)        : ${open} MiB/s"
awk -v o="$openssl_mib" -v a="$aead" -v s="$seal" -v p="$open" 'BEGIN {
  printf "ratio aead/openssl  = %.3f\n", a / o
  printf "ratio seal/openssl  = %.3f  (target >= 0.85)\n", s / o
  printf "ratio open/openssl  = %.3f  (target >= 0.85)\n", p / o
}'
