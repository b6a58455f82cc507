# syntax=docker/dockerfile:1
# syncd container image.
#
#   docker build -t ghcr.io/syncd/syncd:0.1.0 .
#   docker build --build-arg EXTRA_APT_PACKAGES=amazon-ecr-credential-helper -t syncd:ecr .
#   make image    (buildah, no Docker engine and no registry: see scripts/image-build.sh)
#
# Build arguments:
#   BASE                a Debian-based image with python3 and its venv module. Default
#                       python:3.11-slim; `make image` uses one debootstrapped here instead.
#   WHEELS=pypi|local   where pip finds wheels in the builder stage. pypi (default): the index.
#                       local: only build/image-wheels/ in the context (scripts/image-wheels.sh
#                       fills it on the host), for builds without network.
#
# The image runs as UID/GID 10001 on a read-only root filesystem: it writes only to /tmp (an
# emptyDir in the Kubernetes manifests). The final stage is one layer copied from a runtime stage
# after pip, setuptools, apt and dpkg were removed: no package manager or compiler is left, and
# no lower layer still holds them. tests/integration/test_image.py builds this file with buildah,
# runs the image and checks all of that.
#
# Credential helpers: syncd runs `docker-credential-<helper> get` from $PATH. Two ways to add one:
#   1. A Debian package, at build time (the only place apt still exists):
#        docker build --build-arg EXTRA_APT_PACKAGES="amazon-ecr-credential-helper" .
#      (amazon-ecr-credential-helper gives docker-credential-ecr-login; several packages may be
#      listed, separated by spaces, optionally pinned as name=version.)
#   2. A derived image with a binary of your own:
#        FROM ghcr.io/syncd/syncd:0.1.0
#        COPY --chmod=0755 docker-credential-acme /usr/local/bin/docker-credential-acme
#      /usr/local/bin is on $PATH; the file stays owned by root, so syncd (UID 10001) can run it
#      but not replace it.

ARG BASE=python:3.11-slim

# --- builder: the syncd wheel and the wheels of its dependencies --------------------------------
FROM ${BASE} AS builder
ARG WHEELS=pypi
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Only what the wheel is built from (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY syncd ./syncd
# First syncd alone, then every dependency as its wheel's metadata declares it: /wheels is then
# exactly what the final stage installs, resolved once, here. pip runs from a venv of its own
# (python:3.11-slim has a pip, a Debian python3 has none). With WHEELS=local, pip and the build
# backend it installs in isolation see only the context's build/image-wheels/.
RUN --mount=type=bind,target=/context \
    if [ "${WHEELS}" = local ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/context/build/image-wheels; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/build/bin/pip wheel --wheel-dir /wheels /wheels/syncd-*.whl

# --- runtime: the venv, the user, then pip, apt and dpkg removed ---------------------------------
FROM ${BASE} AS runtime
# Debian packages to add, e.g. credential helpers (see the top of this file). Empty: none.
ARG EXTRA_APT_PACKAGES=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
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
# The wheels are copied from the builder, not bind-mounted: a layer cache (buildah --layers, 1.28)
# keys a RUN step on its text and its parent layer only, so behind a bind mount new wheels reused
# the old install. A COPY is keyed on what it copies. The venv's own pip installs them, then
# uninstalls itself; the wheels go, and the last stage copies only the result. Last, every package
# manager goes: pip anywhere, ensurepip's bundled wheels, apt and dpkg (the dpkg status file
# stays, for scanners listing the Debian packages).
COPY --from=builder /wheels /tmp/wheels
RUN python3 -m venv /opt/syncd \
    && /opt/syncd/bin/pip install --no-index --find-links=/tmp/wheels /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && /opt/syncd/bin/pip check \
    && /opt/syncd/bin/pip uninstall --yes pip setuptools \
    && /opt/syncd/bin/syncd version \
    && rm -rf /usr/local/bin/pip* /usr/bin/pip* /usr/share/python-wheels \
              /usr/local/lib/python3*/ensurepip /usr/lib/python3*/ensurepip \
              /usr/local/lib/python3*/site-packages/pip* /usr/local/lib/python3*/site-packages/setuptools* \
              /usr/bin/apt* /usr/bin/dpkg* /usr/sbin/dpkg* /usr/lib/apt /usr/lib/dpkg \
              /etc/apt /var/lib/apt /var/cache/apt /var/cache/debconf /var/log/*

# --- final: the runtime stage's files as one layer -----------------------------------------------
FROM scratch
ARG BASE=python:3.11-slim
# Keep in step with pyproject.toml's version (tests/integration/test_image.py checks it).
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

# On purpose (DL3067): one layer without the package managers the base's layers still hold.
# hadolint ignore=DL3067
COPY --from=runtime / /

LABEL org.opencontainers.image.title="syncd" \
      org.opencontainers.image.description="Syncs container-registry credentials from Vault/OpenBao or Docker credential helpers into Kubernetes dockerconfigjson Secrets" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/syncd/syncd" \
      org.opencontainers.image.url="https://github.com/syncd/syncd" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"

# Python never writes bytecode at run time (pip compiled it at install time): nothing is written
# outside /tmp, so the root filesystem can be read-only. HOME=/tmp gives credential helpers that
# keep a cache in $HOME (docker-credential-ecr-login: ~/.ecr) a writable place for it.
ENV PATH=/opt/syncd/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    SYNCD_CONFIG=/etc/syncd/syncd.yaml

USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["syncd"]
CMD ["run", "--config", "/etc/syncd/syncd.yaml"]
