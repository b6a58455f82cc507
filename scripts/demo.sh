#!/usr/bin/env bash
# `make demo`: a throwaway local cluster, OpenBao, credential helper and registry; syncd syncs a
# Vault credential and a helper credential into 20 namespaces; everything stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR="${DEMO_DIR:-/tmp/syncd-demo}"
export PATH="$PWD/.venv/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR"
trap 'python -m tests.harness down --dir "$DEMO_DIR" >/dev/null' EXIT
step "starting etcd, kube-apiserver, OpenBao, docker-credential-pass and a registry in $DEMO_DIR"
python -m tests.harness up --dir "$DEMO_DIR"
# shellcheck disable=SC1091
. "$DEMO_DIR/env"

step "a robot account in OpenBao, and the local registry's login in docker-credential-pass"
bao kv put secret/registry/ghcr username=demo-robot password="ghp-demo-$RANDOM$RANDOM" >/dev/null
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' \
  "$SYNCD_TEST_REGISTRY" "$SYNCD_TEST_REGISTRY_USER" "$SYNCD_TEST_REGISTRY_PASSWORD" | docker-credential-pass store
for i in $(seq -w 1 20); do kubectl create namespace "team-$i" >/dev/null; done
kubectl create namespace payments >/dev/null && kubectl label namespace payments pull-secrets=enabled >/dev/null
kubectl create namespace kube-demo >/dev/null
for ns in team-01 team-02; do kubectl -n "$ns" create serviceaccount default >/dev/null; done
kubectl -n team-03 create secret generic regcred --from-literal=owner=someone-else >/dev/null

cat > "$DEMO_DIR/syncd.yaml" <<YAML
vault:
  address: $VAULT_ADDR
  auth: {method: token}        # \$VAULT_TOKEN
credentials:
  - name: ghcr
    registry: ghcr.io
    vault: {kv: 2, mount: secret, path: registry/ghcr}
  - name: local
    registry: $SYNCD_TEST_REGISTRY
    helper: pass
    lifetime: 12h
secrets:
  - name: regcred
    credentials: [ghcr, local]
    namespaces:
      patterns: ["team-*", "kube-*"]
      selector: "pull-secrets=enabled"
      exclude: ["kube-*"]
    service_accounts: [default]
YAML
step "the config"; cat "$DEMO_DIR/syncd.yaml"
step "syncd check-config"; syncd check-config --config "$DEMO_DIR/syncd.yaml"
step "syncd once --dry-run (team-03 holds a Secret syncd does not own: a conflict)"
syncd once --config "$DEMO_DIR/syncd.yaml" --dry-run | head -8 || true
step "syncd once"; syncd once --config "$DEMO_DIR/syncd.yaml" --log-format text || true
step "syncd once again: nothing changed, nothing written"
syncd once --config "$DEMO_DIR/syncd.yaml" --log-format text || true
step "rotate the robot password in OpenBao, then sync"
bao kv put secret/registry/ghcr username=demo-robot password="ghp-rotated-$RANDOM" >/dev/null
syncd once --config "$DEMO_DIR/syncd.yaml" --log-format text || true
step "syncd status (no secret values, ever)"
syncd status --config "$DEMO_DIR/syncd.yaml" | head -8 || true
step "team-01's default ServiceAccount"
kubectl -n team-01 get serviceaccount default -o jsonpath='{.imagePullSecrets}'; echo
step "done; stopping everything"
