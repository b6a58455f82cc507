#!/usr/bin/env bash
# Build (once) and print the folder holding kube-controller-manager, the control-plane piece the
# harness runs beside kube-apiserver (tests/harness/controllers.py). Built from the Go module proxy
# with the same wrapper go.mod as kube-apiserver (scripts/envtest-binaries.sh), cached by
# Kubernetes version outside the repo, rebuilt when the binary is missing.
#
# Skipped when $KUBE_CONTROLLER_MANAGER names an executable (then its folder is printed).
# Prints the folder on stdout; progress goes to stderr.
set -euo pipefail

KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/control-plane"
OUT="$CACHE_ROOT/k8s-$KUBE_VERSION"

log() { echo "control-plane-binaries: $*" >&2; }

if [[ -n "${KUBE_CONTROLLER_MANAGER:-}" ]]; then
  [[ -x "$KUBE_CONTROLLER_MANAGER" ]] || { log "KUBE_CONTROLLER_MANAGER=$KUBE_CONTROLLER_MANAGER is not executable"; exit 1; }
  dirname "$KUBE_CONTROLLER_MANAGER"
  exit 0
fi
if [[ -x "$OUT/kube-controller-manager" ]]; then
  echo "$OUT"
  exit 0
fi

# shellcheck source=k8s-go-mod.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-go-mod.sh"
command -v go >/dev/null || { log "Go is needed to build kube-controller-manager (https://go.dev/dl)"; exit 1; }
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log "building kube-controller-manager v$KUBE_VERSION from the Go module proxy (a few minutes, once)"
cd "$WORK"
write_k8s_go_mod syncd.local/envtest/control-plane "$KUBE_VERSION"
go build -tags selinux,notest -trimpath -ldflags "-s -w" -o "$OUT/kube-controller-manager.tmp" \
  k8s.io/kubernetes/cmd/kube-controller-manager
mv "$OUT/kube-controller-manager.tmp" "$OUT/kube-controller-manager"
log "kube-controller-manager in $OUT"
echo "$OUT"
