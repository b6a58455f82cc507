#!/usr/bin/env bash
# Build (once) and print the folder holding the etcd and kube-apiserver binaries the
# integration tests run. Binaries are cached by version outside the repo, because the
# kube-apiserver build takes minutes and the result never changes for a pinned release.
#
# Skipped when the envtest conventions already point at binaries:
#   TEST_ASSET_KUBE_APISERVER + TEST_ASSET_ETCD, or KUBEBUILDER_ASSETS (a folder with both).
# Prints the assets folder on stdout; progress goes to stderr.
set -euo pipefail

KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
ETCD_VERSION="${SYNCD_ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/envtest"
ASSETS="$CACHE_ROOT/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION"

log() { echo "envtest-binaries: $*" >&2; }

if [[ -n "${TEST_ASSET_KUBE_APISERVER:-}" && -x "${TEST_ASSET_KUBE_APISERVER}" \
   && -n "${TEST_ASSET_ETCD:-}" && -x "${TEST_ASSET_ETCD}" ]]; then
  log "using TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD"
  dirname "$TEST_ASSET_KUBE_APISERVER"
  exit 0
fi
if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

# shellcheck source=k8s-go-mod.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-go-mod.sh"
command -v go >/dev/null || { log "Go is needed to build kube-apiserver and etcd (https://go.dev/dl)"; exit 1; }
mkdir -p "$ASSETS"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

build_kube_apiserver() {
  log "building kube-apiserver v$KUBE_VERSION from the Go module proxy (several minutes, once)"
  mkdir -p "$WORK/kube" && cd "$WORK/kube"
  write_k8s_go_mod syncd.local/envtest/kube "$KUBE_VERSION"
  go build -tags selinux,notest -trimpath -ldflags "-s -w" -o "$ASSETS/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$ASSETS/kube-apiserver.tmp" "$ASSETS/kube-apiserver"
}

build_etcd() {
  log "building etcd v$ETCD_VERSION from the Go module proxy"
  mkdir -p "$WORK/etcd" && cd "$WORK/etcd"
  cat > go.mod <<MOD
module syncd.local/envtest/etcd
go 1.24
require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
MOD
  cat > main.go <<'GO'
// The etcd binary is etcdmain.Main; wrapping it lets the released server module build
// without the root module's in-repo replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" .
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

[[ -x "$ASSETS/etcd" ]] || build_etcd
[[ -x "$ASSETS/kube-apiserver" ]] || build_kube_apiserver
log "binaries in $ASSETS"
echo "$ASSETS"
