#!/usr/bin/env bash
# Build (once) and print the path of bench's Go write floor (scripts/write-floor/main.go): the
# writes of a syncd rollout from client-go over HTTP/2. Built from the Go module proxy against
# k8s.io/client-go v0.Y.Z of the harness's Kubernetes 1.Y.Z (already in the module cache once
# scripts/envtest-binaries.sh ran), cached by that version outside the repo, and rebuilt when the
# binary is missing or main.go changed.
#
# Skipped when $WRITE_FLOOR names an executable. Prints the binary's path on stdout; progress
# goes to stderr.
set -euo pipefail

KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
CLIENT_VERSION="v0.${KUBE_VERSION#1.}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/write-floor"
OUT_DIR="$CACHE_ROOT/client-go-$CLIENT_VERSION"
BIN="$OUT_DIR/write-floor"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/write-floor/main.go"

log() { echo "write-floor: $*" >&2; }

if [[ -n "${WRITE_FLOOR:-}" ]]; then
  if [[ -x "$WRITE_FLOOR" && ! -d "$WRITE_FLOOR" ]]; then
    log "using WRITE_FLOOR=$WRITE_FLOOR"
    echo "$WRITE_FLOOR"
    exit 0
  fi
  log "WRITE_FLOOR=$WRITE_FLOOR is not an executable file; unset it to build one instead"
  exit 1
fi
source_sum="$(sha256sum "$SOURCE" | cut -d' ' -f1)"
if [[ -x "$BIN" && "$(cat "$BIN.source-sha256" 2>/dev/null)" == "$source_sum" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "Go is needed to build the write floor (https://go.dev/dl)"; exit 1; }
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log "building against k8s.io/client-go $CLIENT_VERSION from the Go module proxy (once)"
cd "$WORK"
{
  echo "module syncd.local/tools/write-floor"
  echo "go 1.24"
  echo "require ("
  for m in k8s.io/api k8s.io/apimachinery k8s.io/client-go; do echo "  $m $CLIENT_VERSION"; done
  echo ")"
} > go.mod
cp "$SOURCE" main.go
go mod tidy >&2
go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .
mv "$BIN.tmp" "$BIN"
echo "$source_sum" > "$BIN.source-sha256"
log "in $BIN"
echo "$BIN"
