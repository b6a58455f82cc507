#!/usr/bin/env bash
# Build (once) and print the path of hollow-node (scripts/hollow-node/main.go): v1.34.4's hollow
# kubelet (k8s.io/kubernetes/pkg/kubemark) with fake containers and real image pulls, the node of
# the test cluster (harness/node.py). Built from the Go module proxy with the wrapper go.mod
# of scripts/k8s-go-mod.sh, like kube-apiserver, and cached outside the repo under the Kubernetes
# version and the hash of main.go (and of this script): worktrees with different sources each keep their own build.
#
# Skipped when $HOLLOW_NODE names an executable.
# Prints the binary's path on stdout; progress goes to stderr.
# `hollow-node.sh --test` instead runs gofmt, go vet and main_test.go (the image service's logins).
set -euo pipefail

KUBE_VERSION="${SYNCD_KUBE_VERSION:-1.34.4}"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hollow-node/main.go"

log() { echo "hollow-node: $*" >&2; }

TEST=""
[[ "${1:-}" == "--test" ]] && TEST=1
if [[ -z "$TEST" && -n "${HOLLOW_NODE:-}" ]]; then
  if [[ -x "$HOLLOW_NODE" && ! -d "$HOLLOW_NODE" ]]; then
    log "using HOLLOW_NODE=$HOLLOW_NODE"
    echo "$HOLLOW_NODE"
    exit 0
  fi
  log "HOLLOW_NODE=$HOLLOW_NODE is not an executable file; unset it to build one instead"
  exit 1
fi
# The build recipe below is part of what is cached, so this script is hashed with main.go.
source_sum="$(cat "$SOURCE" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
OUT_DIR="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/hollow-node/k8s-$KUBE_VERSION-$source_sum"
BIN="$OUT_DIR/hollow-node"
if [[ -z "$TEST" && -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

# shellcheck source=k8s-go-mod.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-go-mod.sh"
command -v go >/dev/null || { log "Go is needed to build hollow-node (https://go.dev/dl)"; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

if [[ -n "$TEST" ]]; then
  cd "$WORK"
  write_k8s_go_mod syncd.local/tools/hollow-node "$KUBE_VERSION"
  cp "$SOURCE" "$(dirname "$SOURCE")/main_test.go" .
  unformatted="$(gofmt -l .)"
  [[ -z "$unformatted" ]] || { log "gofmt: $unformatted"; exit 1; }
  go vet -tags selinux,notest .
  go test -tags selinux,notest -count=1 .
  exit 0
fi

mkdir -p "$OUT_DIR"
log "building against k8s.io/kubernetes v$KUBE_VERSION from the Go module proxy (about a minute with the apiserver's modules cached)"
cd "$WORK"
write_k8s_go_mod syncd.local/tools/hollow-node "$KUBE_VERSION"
cp "$SOURCE" main.go
# The kubelet reports its version in the Node's status (kubectl get nodes): say v$KUBE_VERSION, not
# component-base's placeholder v0.0.0-master.
version_pkg=k8s.io/component-base/version
ldflags="-s -w -X $version_pkg.gitVersion=v$KUBE_VERSION -X $version_pkg.gitMajor=${KUBE_VERSION%%.*}"
ldflags+=" -X $version_pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $version_pkg.gitTreeState=clean"
go build -tags selinux,notest -trimpath -ldflags "$ldflags" -o "$BIN.tmp.$$" .
mv "$BIN.tmp.$$" "$BIN"
log "hollow-node for Kubernetes v$KUBE_VERSION in $BIN"
echo "$BIN"
