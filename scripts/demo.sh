#!/usr/bin/env bash
# `make demo`: a throwaway local cluster (a control plane and one kubelet whose pulls are real),
# OpenBao, credential helper and registry; syncd syncs a Vault credential and a helper credential
# into 20 namespaces; a Deployment of a private image runs with syncd's Secret and fails without
# it; everything stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR="${DEMO_DIR:-/tmp/syncd-demo}"
export PATH="$PWD/.venv/bin:$PATH"
elapsed() { python -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$1"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR"
trap 'python -m harness down --dir "$DEMO_DIR" >/dev/null || true' EXIT
step "starting a control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), a kubelet node, OpenBao, docker-credential-pass and a registry in $DEMO_DIR"
python -m harness up --dir "$DEMO_DIR"
# shellcheck disable=SC1091
. "$DEMO_DIR/env"

step "a robot account in OpenBao, and the local registry's login in docker-credential-pass"
bao kv put secret/registry/ghcr username=demo-robot password="ghp-demo-$RANDOM$RANDOM" >/dev/null
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' \
  "$SYNCD_TEST_REGISTRY" "$SYNCD_TEST_REGISTRY_USER" "$SYNCD_TEST_REGISTRY_PASSWORD" | docker-credential-pass store
for i in $(seq -w 1 20); do kubectl create namespace "team-$i" >/dev/null; done
kubectl create namespace payments >/dev/null && kubectl label namespace payments pull-secrets=enabled >/dev/null
kubectl create namespace kube-demo >/dev/null
# syncd's status objects, as Helm (crds/) and the Kustomize base install them.
kubectl apply -f deploy/kustomize/base/crd.yaml >/dev/null
# No ServiceAccount to create: kube-controller-manager gives every namespace its `default` one.
kubectl -n team-03 create secret generic regcred --from-literal=owner=someone-else >/dev/null

cat > "$DEMO_DIR/syncd.yaml" <<YAML
vault:
  address: $VAULT_ADDR
  allow_http: true             # the demo's OpenBao listens on loopback without TLS
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
PORT=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >> "$DEMO_DIR/syncd.yaml" <<YAML
schedule: {interval: 10s, jitter: 2s}   # short for the demo; the default is 5m
server: {address: "127.0.0.1:$PORT"}
YAML
step "the config"; cat "$DEMO_DIR/syncd.yaml"
step "syncd check-config"; syncd check-config --config "$DEMO_DIR/syncd.yaml"
step "syncd once --dry-run: the plan (team-03 holds a Secret syncd does not own: a conflict)"
syncd once --config "$DEMO_DIR/syncd.yaml" --dry-run --log-level warning | head -8 || true

step "syncd run in the background (log: $DEMO_DIR/syncd.log)"
syncd run --config "$DEMO_DIR/syncd.yaml" --log-format text > "$DEMO_DIR/syncd.log" 2>&1 &
SYNCD_PID=$!
trap 'kill -TERM $SYNCD_PID 2>/dev/null || true; python -m harness down --dir "$DEMO_DIR" >/dev/null || true' EXIT
until curl -sf "127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
grep "sync finished" "$DEMO_DIR/syncd.log" | tail -1

hash_of() { kubectl -n "$1" get secret regcred -o jsonpath='{.metadata.annotations.syncd\.io/content-hash}' 2>/dev/null; }
step "a namespace created now gets its Secret from the watch, without waiting for the schedule"
kubectl create namespace team-21 >/dev/null; start=$(date +%s.%N)
until [ -n "$(hash_of team-21)" ]; do sleep 0.1; done
echo "team-21 has regcred after $(elapsed "$start")s"

step "rotate the robot password in OpenBao; watch it arrive in every namespace"
before=$(hash_of team-01)
bao kv put secret/registry/ghcr username=demo-robot password="ghp-rotated-$RANDOM" >/dev/null; start=$(date +%s.%N)
until [ "$(hash_of team-01)" != "$before" ]; do sleep 0.2; done
echo "rotated content in team-01 after $(elapsed "$start")s (the next scheduled sync)"
echo "namespaces per content hash (one hash: every namespace has the rotated credential):"
kubectl get secrets -A -l app.kubernetes.io/managed-by=syncd \
  -o jsonpath='{range .items[*]}{.metadata.annotations.syncd\.io/content-hash}{"\n"}{end}' | sort | uniq -c
grep "sync finished" "$DEMO_DIR/syncd.log" | tail -2

step "syncd status (no secret values, ever)"
syncd status --config "$DEMO_DIR/syncd.yaml" --log-level warning | head -8 || true
step "what kubectl shows of it: kubectl get pullsync (status objects, written on change only)"
kubectl wait --for=condition=Ready pullsync --all --timeout=30s >/dev/null || true
kubectl get pullsync -o wide
step "team-01's default ServiceAccount"
kubectl -n team-01 get serviceaccount default -o jsonpath='{.imagePullSecrets}'; echo
step "a few lines of /metrics"
curl -s "127.0.0.1:$PORT/metrics" | grep -E '^syncd_(sync_runs_total|source_requests_total|secret_writes_total|namespaces|leader|credential_expiry)' | head -14
step "a Deployment of a private image from the local registry, in a new namespace: Running with syncd's Secret"
# Tag `latest`: pulled on every Pod start (imagePullPolicy Always). With IfNotPresent an image
# already on the node runs in any Pod, whatever its pull Secrets (so it does in real clusters).
IMAGE=$(python -m harness push-image --dir "$DEMO_DIR" --repository demo/app --tag latest)
echo "pushed $IMAGE (private: the registry wants a login)"
kubectl create namespace team-22 >/dev/null
# The ServiceAccount admission plugin copies imagePullSecrets into a Pod once, at creation: wait
# until syncd has linked its Secret to team-22's `default` ServiceAccount (about a second).
until kubectl -n team-22 get serviceaccount default -o jsonpath='{.imagePullSecrets}' 2>/dev/null | grep -q regcred; do sleep 0.2; done
kubectl -n team-22 create deployment app --image="$IMAGE" >/dev/null
kubectl -n team-22 wait --for=condition=Available deployment/app --timeout=120s
kubectl -n team-22 get pods -o wide

step "the same Deployment in kube-demo, which syncd does not select: the kubelet's ImagePullBackOff"
kubectl -n kube-demo create deployment app --image="$IMAGE" >/dev/null
waiting_reason() { kubectl -n kube-demo get pods -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason}' 2>/dev/null; }
until [ "$(waiting_reason)" = ImagePullBackOff ]; do sleep 0.5; done
kubectl -n kube-demo get pods
kubectl -n kube-demo get events --field-selector reason=Failed -o jsonpath='{.items[0].message}'; echo

step "SIGTERM: finish in-flight writes, exit 0"
kill -TERM $SYNCD_PID; wait $SYNCD_PID && echo "syncd exited 0"; tail -2 "$DEMO_DIR/syncd.log"
step "done; stopping everything"
