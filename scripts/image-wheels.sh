#!/usr/bin/env bash
# Fill build/image-wheels/ with every wheel the Dockerfile's builder stage needs when built with
# WHEELS=local (no PyPI in the build): the locked build backend (requirements/build.txt) and the
# locked dependencies of syncd (requirements/image.txt), downloaded on the host by pip from PyPI
# or pip's cache and checked against the locks' hashes (the builder checks them again). Wheels
# only, never built here: a wheel built from an sdist would not match the lock's hashes. The
# host's Python must match the base image's (3.11: pure-Python and cp311 manylinux wheels).
# Prints the folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=build/image-wheels
mkdir -p "$OUT"
"$PY" -m pip download --quiet --disable-pip-version-check --require-hashes --only-binary :all: \
  --dest "$OUT" -r requirements/build.txt -r requirements/image.txt >&2
echo "$OUT"
