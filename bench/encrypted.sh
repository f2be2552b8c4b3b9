#!/usr/bin/env bash
# Encryption overhead: 1 GiB single-stream PUT and GET through an encrypting gateway vs a pass-through
# gateway, both in front of nginx, in one run; prints MiB/s and the ratios (target >= 0.70).
# Usage: bench/encrypted.sh [--size-mib N] [--repeat N] [--cipher aes-256-gcm|chacha20-poly1305]
# Needs nginx-light (scripts/deps.sh bench) and builds the release binary unless GATEWAY_BIN is set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${GATEWAY_BIN:-}" ]]; then
  swift build -c release --product s3-encryption-gateway >/dev/null
  GATEWAY_BIN="$(swift build -c release --show-bin-path)/s3-encryption-gateway"
  export GATEWAY_BIN
fi
exec python3 bench/encrypted.py "$@"
