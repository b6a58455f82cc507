#!/usr/bin/env bash
# Build (once) and print the path of docker-credential-ecr-login, the Docker credential helper for
# Amazon ECR (github.com/awslabs/amazon-ecr-credential-helper/ecr-login). The ECR tests run it
# against a local ECR API emulator (moto, harness/ecr.py). Built from the Go module proxy at
# a pinned version with `go install` into a cache outside the repo, and rebuilt when the binary is
# missing.
#
# Skipped when $ECR_LOGIN_HELPER names an executable (one you installed yourself, e.g. Debian's
# amazon-ecr-credential-helper: /usr/bin/docker-credential-ecr-login).
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

ECR_LOGIN_VERSION="${SYNCD_ECR_LOGIN_VERSION:-0.13.0}"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/ecr-login"
OUT_DIR="$CACHE_ROOT/$ECR_LOGIN_VERSION"
BIN="$OUT_DIR/docker-credential-ecr-login"
MODULE="github.com/awslabs/amazon-ecr-credential-helper/ecr-login/cli/docker-credential-ecr-login"

log() { echo "ecr-login-helper: $*" >&2; }

if [[ -n "${ECR_LOGIN_HELPER:-}" ]]; then
  if [[ -x "$ECR_LOGIN_HELPER" && ! -d "$ECR_LOGIN_HELPER" ]]; then
    log "using ECR_LOGIN_HELPER=$ECR_LOGIN_HELPER"
    echo "$ECR_LOGIN_HELPER"
    exit 0
  fi
  log "ECR_LOGIN_HELPER=$ECR_LOGIN_HELPER is not an executable file; unset it to build v$ECR_LOGIN_VERSION instead"
  exit 1
fi
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "Go is needed to build docker-credential-ecr-login (https://go.dev/dl)"; exit 1; }
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log "building docker-credential-ecr-login v$ECR_LOGIN_VERSION from the Go module proxy (about a minute, once)"
# go install writes into GOBIN; build into a scratch GOBIN and move the binary into place at once,
# so an interrupted build never leaves a half-written binary in the cache.
GOBIN="$WORK/bin" go install -trimpath -ldflags "-s -w" "$MODULE@v$ECR_LOGIN_VERSION"
mv "$WORK/bin/docker-credential-ecr-login" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
log "docker-credential-ecr-login v$ECR_LOGIN_VERSION in $BIN"
echo "$BIN"
