#!/usr/bin/env bash
# Compares the gateway's chunked encryption engine with `openssl speed` on the same machine: both
# single-threaded over 64 KiB blocks, both divided by CPU time (openssl speed's default; the engine
# measures its thread's CPU time). Rounds interleave the two (openssl, engine, openssl, engine, ...) so
# other load on a shared machine hits both alike; prints the median of each and the median ratio of
# the rounds with its spread (min-max), plus the load average. Target: engine / openssl >= 0.95.
# Usage: bench/engine.sh [--rounds N] [--total-mib N] [--cipher AES-256-GCM|CHACHA20-POLY1305] [--chunk-size N]
# Needs the `bench-engine` subcommand of s3-encryption-gateway (runEngineBenchmark).
set -euo pipefail
cd "$(dirname "$0")/.."

cipher="aes-256-gcm"
rounds="${BENCH_ROUNDS:-5}"
engine_args=()
while (($#)); do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --cipher) cipher="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')"; engine_args+=("$1" "$2"); shift 2 ;;
    *) engine_args+=("$1"); shift ;;
  esac
done

bin="${GATEWAY_BIN:-}"
if [[ -z "$bin" ]]; then
  swift build -c release --product s3-encryption-gateway >/dev/null
  bin="$(swift build -c release --show-bin-path)/s3-encryption-gateway"
fi

echo "bench-engine: ${cipher}, 64 KiB, ${rounds} interleaved rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
results=()
for ((r = 1; r <= rounds; r++)); do
  # Last line of openssl speed: "<CIPHER>  <n>k" where n is in thousands of bytes per second.
  openssl_k="$(openssl speed -evp "$cipher" -bytes 65536 -seconds 3 2>/dev/null | tail -n 1 | awk '{v=$NF; sub(/k$/, "", v); print v}')"
  engine_out="$("$bin" bench-engine "${engine_args[@]}")"
  get() { printf '%s\n' "$engine_out" | awk -F= -v k="$1" '$1 == k {print $2}'; }
  line="$(awk -v k="$openssl_k" -v a="$(get aead_seal_mib_s)" -v s="$(get engine_seal_mib_s)" -v p="$(get engine_open_mib_s)" \
    'BEGIN {o = k * 1000 / 1048576; printf "%.1f %s %s %s", o, a, s, p}')"
  echo "  round ${r}: openssl ${line%% *} MiB/s; aead, seal, open: ${line#* } MiB/s"
  results+=("$line")
done

printf '%s\n' "${results[@]}" | awk '
  function median(v, n,    i, j, t) {
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { n++; o[n] = $1; a[n] = $2; s[n] = $3; p[n] = $4; ra[n] = $2 / $1; rs[n] = $3 / $1; rp[n] = $4 / $1 }
  function report(label, r, goal,    i, lo, hi, c) {
    lo = hi = r[1]; for (i = 1; i <= n; i++) { c[i] = r[i]; if (r[i] < lo) lo = r[i]; if (r[i] > hi) hi = r[i] }
    printf "ratio %-16s median %.3f  spread %.3f-%.3f  %s\n", label, median(c, n), lo, hi, goal
  }
  END {
    printf "openssl speed 64 KiB        median %.1f MiB/s\n", median(o, n)
    printf "AEADContext seal 64 KiB     median %.1f MiB/s\n", median(a, n)
    printf "engine seal (ChunkSealer)   median %.1f MiB/s\n", median(s, n)
    printf "engine open (ChunkOpener)   median %.1f MiB/s\n", median(p, n)
    report("aead/openssl", ra, "")
    report("seal/openssl", rs, "(target >= 0.95)")
    report("open/openssl", rp, "(target >= 0.95)")
  }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
