#!/usr/bin/env bash
# Build (once) and print the path of the helm v3 binary the chart tests run. Built from the Go
# module proxy and cached by version outside the repo, because the build takes minutes and the
# result never changes for a pinned release.
#
# Skipped when $HELM names an executable (a helm you installed yourself); a $HELM that names
# nothing is an error rather than a silent rebuild.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

HELM_VERSION="${SYNCD_HELM_VERSION:-3.22.0}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}"
HELM_BIN="$CACHE_ROOT/helm-$HELM_VERSION/helm"

log() { echo "helm-binary: $*" >&2; }

if [[ -n "${HELM:-}" ]]; then
  if [[ -x "$HELM" && ! -d "$HELM" ]]; then
    log "using HELM=$HELM"
    echo "$HELM"
    exit 0
  fi
  log "HELM=$HELM is not an executable file; unset it to build helm v$HELM_VERSION instead"
  exit 1
fi
if [[ -x "$HELM_BIN" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

command -v go >/dev/null || { log "Go is needed to build helm (https://go.dev/dl), or set HELM to a helm v3 binary"; exit 1; }
mkdir -p "$(dirname "$HELM_BIN")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

build_helm() {
  local mod_file k8s_minor ldflags
  log "building helm v$HELM_VERSION from the Go module proxy (a few minutes, once)"
  mkdir -p "$WORK/helm" && cd "$WORK/helm"
  mod_file="$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module syncd.local/tools/helm"
    echo "go $(awk '/^go /{print $2; exit}' "$mod_file")"
    echo "require helm.sh/helm/v3 v$HELM_VERSION"
  } > go.mod
  # Helm's own Makefile stamps the version, and the Kubernetes version that `helm template`
  # reports as .Capabilities.KubeVersion (from its client-go v0.Y.Z: Kubernetes 1.Y).
  go mod download helm.sh/helm/v3
  k8s_minor="$(go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  go build -trimpath -ldflags "$ldflags" -o "$HELM_BIN.tmp" helm.sh/helm/v3/cmd/helm
  mv "$HELM_BIN.tmp" "$HELM_BIN"
}

build_helm
log "helm v$HELM_VERSION in $HELM_BIN"
echo "$HELM_BIN"
