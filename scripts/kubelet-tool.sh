#!/usr/bin/env bash
# Build (once) and print the path of a small Go program built against Kubernetes' own modules:
#   kubelet-keyring  the kubelet's image-pull credential lookup (scripts/kubelet-keyring/main.go)
#   kubelet-events   the Events a kubelet writes when a pull fails (scripts/kubelet-events/main.go)
#   write-floor      bench's writes from client-go over HTTP/2 (scripts/write-floor/main.go)
# Usage: scripts/kubelet-tool.sh NAME. Built from the Go module proxy like kube-apiserver in
# scripts/envtest-binaries.sh (a wrapper go.mod that requires k8s.io/kubernetes and replaces every
# staging module), cached by Kubernetes version outside the repo, and rebuilt when the binary is
# missing or its main.go changed.
#
# Skipped when $KUBELET_KEYRING / $KUBELET_EVENTS / $WRITE_FLOOR (the name in capitals) names an executable.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

NAME="${1:?usage: kubelet-tool.sh kubelet-keyring|kubelet-events|write-floor}"
KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/$NAME"
OUT_DIR="$CACHE_ROOT/k8s-$KUBE_VERSION"
BIN="$OUT_DIR/$NAME"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$NAME/main.go"
OVERRIDE_VAR="$(echo "$NAME" | tr 'a-z-' 'A-Z_')"

log() { echo "$NAME: $*" >&2; }

[[ -f "$SOURCE" ]] || { log "no such tool: $SOURCE"; exit 2; }
override="${!OVERRIDE_VAR:-}"
if [[ -n "$override" ]]; then
  if [[ -x "$override" && ! -d "$override" ]]; then
    log "using $OVERRIDE_VAR=$override"
    echo "$override"
    exit 0
  fi
  log "$OVERRIDE_VAR=$override is not an executable file; unset it to build one instead"
  exit 1
fi
source_sum="$(sha256sum "$SOURCE" | cut -d' ' -f1)"
if [[ -x "$BIN" && "$(cat "$BIN.source-sha256" 2>/dev/null)" == "$source_sum" ]]; then
  echo "$BIN"
  exit 0
fi

# shellcheck source=k8s-go-mod.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-go-mod.sh"
command -v go >/dev/null || { log "Go is needed to build $NAME (https://go.dev/dl)"; exit 1; }
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log "building against k8s.io/kubernetes v$KUBE_VERSION from the Go module proxy (a few minutes, once)"
cd "$WORK"
write_k8s_go_mod "syncd.local/tools/$NAME" "$KUBE_VERSION"
cp "$SOURCE" main.go
go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .
mv "$BIN.tmp" "$BIN"
echo "$source_sum" > "$BIN.source-sha256"
log "$NAME for Kubernetes v$KUBE_VERSION in $BIN"
echo "$BIN"
