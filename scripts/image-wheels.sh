#!/usr/bin/env bash
# Fill build/image-wheels/ with every wheel the Dockerfile's builder stage needs when built with
# WHEELS=local (no network in the build): syncd's dependencies and its build backend
# (pyproject.toml's [build-system] requires). Built on the host with pip from PyPI or pip's cache;
# the host's Python must match the base image's (3.11 on bookworm: pure-Python and cp311
# manylinux wheels). Prints the folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=build/image-wheels
mkdir -p "$OUT"
mapfile -t BACKEND < <("$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["build-system"]["requires"]))')
"$PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$OUT" . "${BACKEND[@]}" >&2
rm -f "$OUT"/syncd-*.whl   # the builder stage builds syncd itself, from the copied sources
echo "$OUT"
