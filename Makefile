# Every habit is one target. `make test` installs whatever is missing, then lints and tests.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
APT_PACKAGES := golang-docker-credential-helpers pass gnupg docker-registry apache2-utils openssl prometheus util-linux skopeo buildah podman crun debootstrap lua5.4 postgresql
DEMO_DIR ?= /tmp/syncd-demo
# The envtest folder (etcd + kube-apiserver): built once and cached by version, see the script.
ENVTEST = $(shell scripts/envtest-binaries.sh)
# helm, built from the Go module proxy once and cached by version, for `helm lint` and chart tests.
HELM = $(shell scripts/helm-binary.sh)
# The kubelet's image-pull credential lookup as a small Go program, built once and cached by version.
KUBELET_KEYRING = $(shell scripts/kubelet-keyring.sh)
# The Events a kubelet writes when a pull fails, by the kubelet's own code; built once and cached by version.
KUBELET_EVENTS = $(shell scripts/kubelet-events.sh)
# docker-credential-ecr-login (amazon-ecr-credential-helper), built once and cached by version.
ECR_LOGIN_HELPER = $(shell scripts/ecr-login-helper.sh)
# Two pytest-xdist workers, each with its own servers; a test file stays on one worker, handed
# out in the order tests/integration/conftest.py sorts them (the image build first, the soak's
# test last: the soak itself runs in the background from the start). `make test PYTEST_WORKERS=`
# runs in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder
# `make check`: the unit tests on two workers too (a test file stays on one worker);
# `make check CHECK_WORKERS=` runs them in one process.
CHECK_WORKERS ?= -n 2 --dist loadfile
# Everything, the 3-minute soak included (`make test PYTEST_SELECT='-m "not soak"'` leaves it out).
PYTEST_SELECT ?=

.PHONY: help deps venv envtest control-plane hollow-node helm kubelet-keyring kubelet-events ecr-login-helper image lock lint check test test-soak bench soak soak-report demo demo-up demo-down clean

help:
	@echo "make demo   start a throwaway cluster + OpenBao + helper + registry, run syncd, stop"
	@echo "make check  lint + unit tests, no servers: before each commit (about a minute warm)"
	@echo "make test   install what is missing, lint, and run every test against real servers"
	@echo "make image  build the container image with buildah (base debootstrapped here, cached)"
	@echo "make lock   regenerate requirements/*.txt, the image's hash-pinned Python dependencies"
	@echo "make lint   ruff + mypy --strict + import-linter + hadolint + helm lint"
	@echo "make bench  benchmarks against kubectl and the apiserver's write floor (~20 min)"
	@echo "make soak   the chaos soak: two replicas, churn, rotations, faults (SOAK_DURATION=20m SOAK_SEED=1)"

deps:  ## Debian packages for the credential helper and the registry
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends $$missing || \
	  { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $$missing; }; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The bench extra too: mypy checks bench/ against matplotlib's own types.
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

venv: $(VENV)/.installed

envtest:  ## etcd + kube-apiserver, built from the Go module proxy and cached outside the repo
	scripts/envtest-binaries.sh >/dev/null

helm:  ## helm v3, built from the Go module proxy and cached outside the repo
	scripts/helm-binary.sh >/dev/null

kubelet-keyring:  ## the kubelet's credential lookup (k8s.io/kubernetes), built from the Go module proxy
	scripts/kubelet-keyring.sh >/dev/null

kubelet-events:  ## the kubelet's image-pull failure Events (k8s.io/kubernetes), built from the Go module proxy
	scripts/kubelet-events.sh >/dev/null

control-plane:  ## kube-controller-manager (k8s.io/kubernetes), built from the Go module proxy and cached by version
	scripts/control-plane-binaries.sh >/dev/null

hollow-node:  ## the test cluster's kubelet (k8s.io/kubernetes pkg/kubemark, fake containers, real pulls), built from the Go module proxy
	scripts/hollow-node.sh >/dev/null

ecr-login-helper:  ## docker-credential-ecr-login (amazon-ecr-credential-helper), built from the Go module proxy
	scripts/ecr-login-helper.sh >/dev/null

image: deps venv  ## the container image (buildah, no Docker engine) + its OCI layout and SBOM in build/image
	scripts/image-build.sh

# The image's Python packages, resolved from pyproject.toml (dependencies; build-system.requires)
# with every file's sha256, for `pip install --require-hashes`. Run it after changing either list
# (tests/unit/test_lock.py fails while they disagree); pins that still fit are kept, and
# `make lock LOCK_UPGRADE=--upgrade` takes the newest releases. It resolves for the Python running
# it: 3.11, the image's.
LOCK_UPGRADE ?=
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_UPGRADE)
lock: venv  ## requirements/image.txt + requirements/build.txt: the image's dependencies, pinned with hashes
	$(BIN)/pip-compile $(LOCK_FLAGS) --output-file requirements/image.txt pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --allow-unsafe --build-deps-for wheel --only-build-deps \
	  --output-file requirements/build.txt pyproject.toml

lint: venv helm
	$(BIN)/ruff check syncd harness tests bench soak
	$(BIN)/ruff format --check syncd harness tests bench soak
	$(BIN)/mypy --strict syncd harness tests bench soak
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	"$(HELM)" lint --strict deploy/helm/syncd
	$(PY) -m syncd.manifests.schema --check
	$(PY) -m syncd.manifests.crd --check
	$(PY) -m syncd.manifests.webhook --kustomize deploy/kustomize/overlays/admission --check
	$(PY) deploy/prometheus/generate.py --check

# The tier before each commit: lint and the unit tests, no server started (tests/unit needs
# none; promtool comes from `make deps`, kubectl from the venv).
check: deps lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(CHECK_WORKERS) tests/unit $(PYTEST_ARGS)

test: deps venv envtest control-plane hollow-node helm kubelet-keyring kubelet-events ecr-login-helper lint
	KUBEBUILDER_ASSETS="$(ENVTEST)" HELM="$(HELM)" KUBELET_KEYRING="$(KUBELET_KEYRING)" KUBELET_EVENTS="$(KUBELET_EVENTS)" ECR_LOGIN_HELPER="$(ECR_LOGIN_HELPER)" PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(PYTEST_WORKERS) $(PYTEST_SELECT) $(PYTEST_ARGS)

test-soak: deps venv envtest  ## the 3-minute fixed-seed soak alone (tests/integration/test_soak.py)
	KUBEBUILDER_ASSETS="$(ENVTEST)" PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m soak tests/integration/test_soak.py

bench: deps venv envtest  ## rollout / idle / latency / memory figures -> bench/results, bench/README.md (~20 min)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	KUBEBUILDER_ASSETS="$(ENVTEST)" PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m bench.run --out bench/results

SOAK_DURATION ?= 20m
SOAK_SEED ?= 1
soak: deps venv envtest  ## the chaos soak (issue 13): 20 min, 300 namespaces -> soak/results, then soak/README.md + timeline
	KUBEBUILDER_ASSETS="$(ENVTEST)" PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m soak --duration $(SOAK_DURATION) --seed $(SOAK_SEED) --out soak/results
	$(PY) -m soak.report --results soak/results --readme soak/README.md

soak-report: venv  ## soak/README.md tables and soak/timeline.png from soak/results/*.json
	$(PY) -m soak.report --results soak/results --readme soak/README.md

demo: deps venv envtest control-plane hollow-node
	KUBEBUILDER_ASSETS="$(ENVTEST)" PATH="$(CURDIR)/$(BIN):$$PATH" DEMO_DIR="$(DEMO_DIR)" scripts/demo.sh

demo-up: deps venv envtest control-plane hollow-node
	KUBEBUILDER_ASSETS="$(ENVTEST)" $(PY) -m harness up --dir $(DEMO_DIR)

demo-down: venv
	$(PY) -m harness down --dir $(DEMO_DIR)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
