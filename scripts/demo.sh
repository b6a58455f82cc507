#!/usr/bin/env bash
# `make demo`: a throwaway local cluster, OpenBao, credential helper and registry; syncd runs
# against them; everything is stopped at the end (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR="${DEMO_DIR:-/tmp/syncd-demo}"
PY=.venv/bin/python
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR"
trap '$PY -m tests.harness down --dir "$DEMO_DIR" >/dev/null' EXIT
step "starting etcd, kube-apiserver, OpenBao, docker-credential-pass and a registry in $DEMO_DIR"
$PY -m tests.harness up --dir "$DEMO_DIR"
# shellcheck disable=SC1091
. "$DEMO_DIR/env"

step "the cluster"
kubectl get namespaces

step "syncd"
.venv/bin/syncd version
step "done; stopping everything"
