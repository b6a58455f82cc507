#!/usr/bin/env bash
# Build (once) and print the path of kubelet-keyring: a small Go program that runs the kubelet's
# own credential lookup (k8s.io/kubernetes/pkg/credentialprovider/secrets.MakeDockerKeyring, then
# Lookup) on imagePullSecrets and images given as JSON on stdin; see scripts/kubelet-keyring/main.go.
# Tests compare syncd's resolver against it. Built from the Go module proxy like kube-apiserver in
# scripts/envtest-binaries.sh (a wrapper go.mod that requires k8s.io/kubernetes and replaces every
# staging module), cached by Kubernetes version outside the repo, and rebuilt when the binary is
# missing or main.go changed.
#
# Skipped when $KUBELET_KEYRING names an executable (one you built yourself).
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/kubelet-keyring"
OUT_DIR="$CACHE_ROOT/k8s-$KUBE_VERSION"
BIN="$OUT_DIR/kubelet-keyring"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kubelet-keyring/main.go"

log() { echo "kubelet-keyring: $*" >&2; }

if [[ -n "${KUBELET_KEYRING:-}" ]]; then
  if [[ -x "$KUBELET_KEYRING" && ! -d "$KUBELET_KEYRING" ]]; then
    log "using KUBELET_KEYRING=$KUBELET_KEYRING"
    echo "$KUBELET_KEYRING"
    exit 0
  fi
  log "KUBELET_KEYRING=$KUBELET_KEYRING is not an executable file; unset it to build one instead"
  exit 1
fi
source_sum="$(sha256sum "$SOURCE" | cut -d' ' -f1)"
if [[ -x "$BIN" && "$(cat "$BIN.source-sha256" 2>/dev/null)" == "$source_sum" ]]; then
  echo "$BIN"
  exit 0
fi

# shellcheck source=k8s-go-mod.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-go-mod.sh"
command -v go >/dev/null || { log "Go is needed to build kubelet-keyring (https://go.dev/dl)"; exit 1; }
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log "building against k8s.io/kubernetes v$KUBE_VERSION from the Go module proxy (a few minutes, once)"
cd "$WORK"
write_k8s_go_mod syncd.local/tools/kubelet-keyring "$KUBE_VERSION"
cp "$SOURCE" main.go
go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .
mv "$BIN.tmp" "$BIN"
echo "$source_sum" > "$BIN.source-sha256"
log "kubelet-keyring for Kubernetes v$KUBE_VERSION in $BIN"
echo "$BIN"
