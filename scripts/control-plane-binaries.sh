#!/usr/bin/env bash
# Build (once) and print the folder holding kube-controller-manager and kube-scheduler, the
# control-plane pieces the harness runs beside kube-apiserver (harness/controllers.py). Built from the Go module proxy
# with the same wrapper go.mod as kube-apiserver (scripts/envtest-binaries.sh), cached by
# Kubernetes version outside the repo, rebuilt when the binary is missing.
#
# Skipped when $KUBE_CONTROLLER_MANAGER names an executable (then its folder is printed; the
# scheduler is expected beside it).
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
COMPONENTS=(kube-controller-manager kube-scheduler)
missing=()
for component in "${COMPONENTS[@]}"; do [[ -x "$OUT/$component" ]] || missing+=("$component"); done
if [[ ${#missing[@]} -eq 0 ]]; then
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

cd "$WORK"
write_k8s_go_mod syncd.local/envtest/control-plane "$KUBE_VERSION"
for component in "${missing[@]}"; do
  log "building $component v$KUBE_VERSION from the Go module proxy (a few minutes, once)"
  go build -tags selinux,notest -trimpath -ldflags "-s -w" -o "$OUT/$component.tmp" "k8s.io/kubernetes/cmd/$component"
  mv "$OUT/$component.tmp" "$OUT/$component"
done
log "${COMPONENTS[*]} in $OUT"
echo "$OUT"
