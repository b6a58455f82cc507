# syntax=docker/dockerfile:1
# syncd container image.
#
#   docker build -t ghcr.io/syncd/syncd:0.1.0 .
#   docker build --build-arg EXTRA_APT_PACKAGES=amazon-ecr-credential-helper -t syncd:ecr .
#   make image    (buildah, no Docker engine and no registry: see scripts/image-build.sh)
#
# Build arguments:
#   BASE                a Debian-based image with python3 and its venv module, pinned by digest
#                       (name@sha256:...): the build stops on a reference without one, since a
#                       tag can be moved to other content. Default: python:3.11-slim (trixie,
#                       Python 3.11.16) by the digest of its multi-arch index as pushed on
#                       2026-08-16. To move to a newer one, resolve the tag and test the result:
#                         skopeo inspect --raw docker://docker.io/library/python:3.11-slim | sha256sum
#                         (or: docker buildx imagetools inspect python:3.11-slim)
#                       `make image` uses one debootstrapped here, passed as its local name@digest.
#   WHEELS=pypi|local   where pip finds wheels in the builder stage. pypi (default): the index.
#                       local: only build/image-wheels/ in the context (scripts/image-wheels.sh
#                       fills it on the host), for builds without network to PyPI.
#
# Supply chain: every Python package but syncd comes from requirements/image.txt and the build
# backend from requirements/build.txt, each pinned with its sha256 hashes and installed with
# `pip install --require-hashes` (`make lock` regenerates both from pyproject.toml); syncd's own
# wheel is built here from the context and installed with --no-deps. The Debian packages come
# from the base and from apt (tini, EXTRA_APT_PACKAGES); the dpkg status file stays in the image
# and scripts/image-build.sh lists those packages in the SBOM beside the Python ones.
#
# The image runs as UID/GID 10001 on a read-only root filesystem: it writes only to /tmp (an
# emptyDir in the Kubernetes manifests). The final stage is one layer copied from a runtime stage
# after pip, setuptools, apt and dpkg were removed and every setuid/setgid bit was cleared: no
# package manager or compiler is left, no program gains privileges when run, and no lower layer
# still holds them. PID 1 is tini, which reaps the orphaned children of credential helpers (and
# forwards signals to syncd). tests/integration/test_image.py builds this file with buildah, runs
# the image and checks all of that.
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

ARG BASE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# --- builder: the wheels of syncd's dependencies, then syncd's own -------------------------------
FROM ${BASE} AS builder
ARG BASE
ARG WHEELS=pypi
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# The locks first, alone: the dependencies' steps below depend on them only, so a layer cache
# (buildah --layers, docker) reuses them until a lock changes, and a change to syncd's code
# rebuilds syncd's wheel alone. (.dockerignore keeps everything else out of the context.)
COPY requirements ./requirements
# The base must be pinned by digest. pip runs from a venv of its own (python:3.11-slim has a pip,
# a Debian python3 has none): first the build backend, hash-checked, then the wheels of the
# locked dependencies, each checked against its hashes. With WHEELS=local pip sees only the
# context's build/image-wheels/. /wheels is then exactly what the runtime stage installs, with the
# lock. The bind mount is safe behind a cache: this step's parent is the lock, and the lock's
# hashes pin every wheel it can take.
RUN --mount=type=bind,target=/context \
    case "${BASE}" in \
      *@sha256:*) ;; \
      *) echo "BASE=${BASE} is not pinned by digest: pass name@sha256:<digest>" >&2; exit 1 ;; \
    esac \
    && if [ "${WHEELS}" = local ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/context/build/image-wheels; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary :all: -r requirements/build.txt \
    && /opt/build/bin/pip download --require-hashes --only-binary :all: --dest /wheels -r requirements/image.txt \
    && cp requirements/image.txt /wheels/requirements.txt
# syncd's wheel, built with that backend (no build isolation: nothing unhashed is fetched for it).
COPY pyproject.toml README.md ./
COPY syncd ./syncd
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /syncd-wheel .

# --- runtime: tini, the venv, the user, then pip, apt, dpkg and setuid bits removed ----------
FROM ${BASE} AS runtime
# Debian packages to add, e.g. credential helpers (see the top of this file). Empty: none.
ARG EXTRA_APT_PACKAGES=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# tini (/usr/bin/tini) is PID 1: syncd runs credential helpers, and whatever a helper leaves
# behind when it exits (a daemonised child) is re-parented to PID 1, which must reap it.
# DL3008 (pin apt versions): tini's version is the base's Debian release's (one version per
# release, recorded in the SBOM); EXTRA_APT_PACKAGES may be pinned inside the variable, as
# name=version, where hadolint cannot see.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini ${EXTRA_APT_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && /usr/bin/tini --version \
    && groupadd --system --gid 10001 syncd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin syncd
# The wheels are copied from the builder, not bind-mounted: a layer cache (buildah --layers, 1.28)
# keys a RUN step on its text and its parent layer only, so behind a bind mount new wheels reused
# the old install. A COPY is keyed on what it copies. The venv's own pip installs the locked
# dependencies, hash-checked again: a step cached until a lock changes.
COPY --from=builder /wheels /tmp/wheels
RUN python3 -m venv /opt/syncd \
    && /opt/syncd/bin/pip install --no-index --find-links=/tmp/wheels --require-hashes --only-binary :all: \
       -r /tmp/wheels/requirements.txt \
    && rm -rf /tmp/wheels
# Then syncd's wheel without dependencies, and pip uninstalls itself. Then every package manager
# goes: pip anywhere, ensurepip's bundled wheels, apt and dpkg (the dpkg status file stays, for
# the SBOM and scanners listing the Debian packages). Last, no file keeps a setuid or setgid bit
# (su, mount, passwd, ... in a Debian base): nothing in the image can gain privileges by exec.
# The last stage copies only the result, so what this step removes is gone from every layer.
COPY --from=builder /syncd-wheel /tmp/wheels
RUN /opt/syncd/bin/pip install --no-index --no-deps /tmp/wheels/syncd-*.whl \
    && rm -rf /tmp/wheels \
    && /opt/syncd/bin/pip check \
    && /opt/syncd/bin/pip uninstall --yes pip setuptools \
    && /opt/syncd/bin/syncd version \
    && rm -rf /usr/local/bin/pip* /usr/bin/pip* /usr/share/python-wheels \
              /usr/local/lib/python3*/ensurepip /usr/lib/python3*/ensurepip \
              /usr/local/lib/python3*/site-packages/pip* /usr/local/lib/python3*/site-packages/setuptools* \
              /usr/bin/apt* /usr/bin/dpkg* /usr/sbin/dpkg* /usr/lib/apt /usr/lib/dpkg \
              /etc/apt /var/lib/apt /var/cache/apt /var/cache/debconf /var/log/* \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} +

# --- final: the runtime stage's files as one layer -----------------------------------------------
FROM scratch
ARG BASE
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
# tini -s: it reaps orphans also where it is not PID 1 (a pod with shareProcessNamespace, a
# `docker run --init`), as a child subreaper, instead of warning and reaping nothing.
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "syncd"]
CMD ["run", "--config", "/etc/syncd/syncd.yaml"]
