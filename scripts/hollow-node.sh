#!/usr/bin/env bash
# Build (once) and print the path of hollow-node (scripts/hollow-node/main.go): v1.34.4's hollow
# kubelet (k8s.io/kubernetes/pkg/kubemark) with fake containers and real image pulls, the node of
# the test cluster (tests/harness/node.py). Built from the Go module proxy with the wrapper go.mod
# of scripts/k8s-go-mod.sh, like kube-apiserver, and cached outside the repo under the Kubernetes
# version and the hash of main.go: worktrees with different sources each keep their own build.
#
# Skipped when $HOLLOW_NODE names an executable.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hollow-node/main.go"

log() { echo "hollow-node: $*" >&2; }

if [[ -n "${HOLLOW_NODE:-}" ]]; then
  if [[ -x "$HOLLOW_NODE" && ! -d "$HOLLOW_NODE" ]]; then
    log "using HOLLOW_NODE=$HOLLOW_NODE"
    echo "$HOLLOW_NODE"
    exit 0
  fi
  log "HOLLOW_NODE=$HOLLOW_NODE is not an executable file; unset it to build one instead"
  exit 1
fi
source_sum="$(sha256sum "$SOURCE" | cut -c1-16)"
OUT_DIR="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/hollow-node/k8s-$KUBE_VERSION-$source_sum"
BIN="$OUT_DIR/hollow-node"
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

# shellcheck source=k8s-go-mod.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-go-mod.sh"
command -v go >/dev/null || { log "Go is needed to build hollow-node (https://go.dev/dl)"; exit 1; }
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log "building against k8s.io/kubernetes v$KUBE_VERSION from the Go module proxy (about a minute with the apiserver's modules cached)"
cd "$WORK"
write_k8s_go_mod syncd.local/tools/hollow-node "$KUBE_VERSION"
cp "$SOURCE" main.go
go build -tags selinux,notest -trimpath -ldflags "-s -w" -o "$BIN.tmp.$$" .
mv "$BIN.tmp.$$" "$BIN"
log "hollow-node for Kubernetes v$KUBE_VERSION in $BIN"
echo "$BIN"
