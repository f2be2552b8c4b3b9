#!/usr/bin/env bash
# Renders the operator's one-file install, dist/install.yaml, from config/default (`make dist`).
#   scripts/dist.sh           rewrite dist/install.yaml
#   scripts/dist.sh --check   exit 1 with a diff when dist/install.yaml is not what config/default renders
set -euo pipefail
cd "$(dirname "$0")/.."

render() {
    echo "# The operator's one-file install, rendered from config/default by \`make dist\`; do not edit."
    echo "#   kubectl apply --server-side -f dist/install.yaml"
    kubectl kustomize config/default
}

if [[ ${1:-} == --check ]]; then
    if ! diff -u dist/install.yaml <(render); then
        echo "dist/install.yaml is stale: run \`make dist\`" >&2
        exit 1
    fi
    exit 0
fi
mkdir -p dist
render > dist/install.yaml.tmp
mv dist/install.yaml.tmp dist/install.yaml
echo "wrote dist/install.yaml"
