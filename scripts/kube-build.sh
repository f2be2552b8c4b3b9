#!/usr/bin/env bash
# Builds a real kube-apiserver and kube-controller-manager (Kubernetes 1.20.2) from Debian bookworm's own
# `kubernetes` source package, once, into a cache directory outside the repository; later runs reuse it.
# See /work/shared/design/NOTES.md ("A real kube-apiserver builds here…") and docs/operator-testing.md.
#
#   scripts/kube-build.sh          build when missing, print the bin directory
#   scripts/kube-build.sh --check  exit 0 when the cached build is complete, 1 otherwise (never builds)
#
# Cache: $S3GW_KUBE_CACHE (default ~/.cache/s3gw/kube-1.20.2): bin/{kube-apiserver,kube-controller-manager}.
# Needs (scripts/deps.sh test installs them): golang-go (1.19), dpkg-dev, etcd-server,
# golang-github-modern-go-reflect2-dev and a deb-src source for bookworm (scripts/deps.sh adds one).
set -euo pipefail

version=1.20.2
# Bump when the recipe changes so that caches built by an older recipe are rebuilt.
recipe=3
cache=${S3GW_KUBE_CACHE:-$HOME/.cache/s3gw/kube-$version}
bin=$cache/bin
stamp=$cache/BUILD-INFO
want="kubernetes $version recipe $recipe"

complete() {
    [[ -x $bin/kube-apiserver && -x $bin/kube-controller-manager && -f $stamp ]] && [[ $(cat "$stamp") == "$want" ]]
}

if [[ ${1:-} == --check ]]; then complete; exit; fi
if complete; then echo "$bin"; exit 0; fi

for tool in go dpkg-source apt-get; do
    command -v "$tool" >/dev/null || { echo "kube-build: $tool is missing (run scripts/deps.sh test)" >&2; exit 1; }
done
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -d $reflect2 ]] || { echo "kube-build: $reflect2 is missing (apt-get install golang-github-modern-go-reflect2-dev)" >&2; exit 1; }

start=$SECONDS
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "kube-build: building kube-apiserver and kube-controller-manager $version in $work (about 10 minutes on 2 cores)" >&2

# 1. Debian's source package (orig tarball + Debian's patches, security fixes included).
( cd "$work" && apt-get source --download-only kubernetes >/dev/null 2>&1 ) || {
    echo "kube-build: 'apt-get source kubernetes' failed: is a deb-src line for bookworm configured? (scripts/deps.sh test adds one)" >&2
    exit 1
}
dsc=$(ls "$work"/kubernetes_*.dsc)
[[ $dsc == *"really$version"* || $dsc == *"_$version-"* ]] || echo "kube-build: warning: source package is $dsc, expected $version" >&2

# 2. A GOPATH layout: the tree builds in GOPATH mode with its vendor directory.
gopath=$work/gopath
src=$gopath/src/k8s.io/kubernetes
mkdir -p "$gopath/src/k8s.io"
dpkg-source --no-check -x "$dsc" "$src" >/dev/null

# 3. The vendored reflect2 1.0.1 crashes under Go >= 1.18; Debian's packaged version does not.
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r "$reflect2" "$src/vendor/github.com/modern-go/reflect2"

export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS=-trimpath GOCACHE=$work/gocache
cd "$src"

# 4. pkg/generated/openapi/zz_generated.openapi.go is not in the tarball: generate it with the vendored
#    openapi-gen over every package tagged +k8s:openapi-gen (as Makefile.generated_files does).
#    grep -l exits 1 when a file lacks the tag; that is expected, so it never reaches pipefail. openapi-gen
#    finds the standard library through GOROOT, which a -trimpath binary does not record: pass it.
go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
tagged=$(find . \( -path ./vendor -o -path './_*' -o -path './.*' \) -prune -o -type f -name '*.go' -print0 \
             | { xargs -0 grep -l '^// *+k8s:openapi-gen=' || true; })
dirs=$(printf '%s\n' "$tagged" | grep -v '^$' | xargs -n1 dirname | sed -e 's|^\./||' -e 's|^staging/src/|vendor/|' \
       | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' | LC_ALL=C sort -u \
       | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
[[ -n $dirs ]] || { echo "kube-build: found no +k8s:openapi-gen packages" >&2; exit 1; }
GOROOT=$(go env GOROOT) "$work/openapi-gen" --logtostderr -v 0 -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    -r "$work/openapi-violations.report" >/dev/null 2>"$work/openapi-gen.log" || {
    tail -20 "$work/openapi-gen.log" >&2; exit 1; }
[[ -s pkg/generated/openapi/zz_generated.openapi.go ]] || { echo "kube-build: openapi-gen wrote nothing" >&2; exit 1; }

# 5. The two binaries, with the version discovery reports.
pkg=k8s.io/kubernetes/vendor
ldflags="-s -w"
for v in "gitVersion=v$version" gitMajor=1 gitMinor=20 gitTreeState=clean buildDate=1970-01-01T00:00:00Z; do
    ldflags+=" -X $pkg/k8s.io/component-base/version.$v -X $pkg/k8s.io/client-go/pkg/version.$v"
done
mkdir -p "$work/bin"
go build -p "$(nproc)" -ldflags "$ldflags" -o "$work/bin/" ./cmd/kube-apiserver ./cmd/kube-controller-manager
"$work/bin/kube-apiserver" --version | grep -q "v$version" || { echo "kube-build: kube-apiserver reports the wrong version" >&2; exit 1; }

rm -rf "$bin"
mv "$work/bin" "$bin"
echo "$want" >"$stamp"
echo "kube-build: done in $((SECONDS - start))s" >&2
echo "$bin"
