# syntax=docker/dockerfile:1
# syncd container image.
#
#   docker build -t ghcr.io/syncd/syncd:0.1.0 .
#   docker build --build-arg EXTRA_APT_PACKAGES=amazon-ecr-credential-helper -t syncd:ecr .
#
# The image runs as UID/GID 10001 on a read-only root filesystem: it writes only to /tmp (an
# emptyDir in the Kubernetes manifests). tests/integration/test_image.py reproduces what this
# file does without a Docker engine (wheel -> clean venv -> read-only, non-root run) and lints it
# with hadolint.
#
# Credential helpers: syncd runs `docker-credential-<helper> get` from $PATH. Two ways to add one:
#   1. A Debian package, at build time:
#        docker build --build-arg EXTRA_APT_PACKAGES="amazon-ecr-credential-helper" .
#      (amazon-ecr-credential-helper gives docker-credential-ecr-login; several packages may be
#      listed, separated by spaces, optionally pinned as name=version.)
#   2. A derived image with a binary of your own:
#        FROM ghcr.io/syncd/syncd:0.1.0
#        COPY --chmod=0755 docker-credential-acme /usr/local/bin/docker-credential-acme
#      /usr/local/bin is on $PATH; the file stays owned by root, so syncd (UID 10001) can run it
#      but not replace it.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the syncd wheel and the wheels of its dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Only what the wheel is built from (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY syncd ./syncd
# First syncd alone, then every dependency as its wheel's metadata declares it: /wheels is then
# exactly what the final stage installs, resolved once, here.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/syncd-*.whl

# --- final: a venv holding only the installed wheels ---------------------------------------------
FROM ${PYTHON_IMAGE}

# Keep in step with pyproject.toml's version (tests/integration/test_image.py checks it).
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# Debian packages to add, e.g. credential helpers (see the top of this file). Empty: none.
ARG EXTRA_APT_PACKAGES=""

LABEL org.opencontainers.image.title="syncd" \
      org.opencontainers.image.description="Syncs container-registry credentials from Vault/OpenBao or Docker credential helpers into Kubernetes dockerconfigjson Secrets" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/syncd/syncd" \
      org.opencontainers.image.url="https://github.com/syncd/syncd" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# Python never writes bytecode at run time (pip compiled it at install time): nothing is written
# outside /tmp, so the root filesystem can be read-only. HOME=/tmp gives credential helpers that
# keep a cache in $HOME (docker-credential-ecr-login: ~/.ecr) a writable place for it.
ENV PATH=/opt/syncd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    SYNCD_CONFIG=/etc/syncd/syncd.yaml

# DL3008 (pin apt versions) cannot see inside the variable: pin there, as name=version.
# hadolint ignore=DL3008
RUN if [ -n "${EXTRA_APT_PACKAGES}" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ${EXTRA_APT_PACKAGES} \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 syncd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin syncd

# The wheels are bind-mounted from the builder, never copied: no layer of this image holds them,
# nor the source tree. The venv has no pip of its own (the base image's pip installs into it).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/syncd \
    && pip --python /opt/syncd/bin/python install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
    && pip --python /opt/syncd/bin/python check \
    && syncd version

USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["syncd"]
CMD ["run", "--config", "/etc/syncd/syncd.yaml"]
