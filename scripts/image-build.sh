#!/usr/bin/env bash
# Build the Dockerfile with buildah, without a Docker engine or any registry outside this machine:
#   - the base is debootstrapped here (scripts/image-base.sh, cached) unless SYNCD_IMAGE_BASE names
#     one the image store already holds;
#   - the builder stage gets its wheels from the context (WHEELS=local, scripts/image-wheels.sh);
#   - `buildah bud --isolation chroot`: the RUN steps run chrooted with the host's network and
#     no new user, PID or network namespace, which is what this sandbox allows (the OCI isolation
#     needs a runtime that sets rlimits and namespaces it refuses);
#   - --layers: unchanged steps come from the store's layer cache on the next build. buildah 1.28
#     reuses a LABEL step whose build-arg values changed, so the per-commit labels (revision,
#     created) are also given with --label, which applies at commit time.
# Then, beside the image, in build/image/: the image as an OCI layout (gzip layers, what a
# registry stores: its compressed size) and a CycloneDX SBOM of the Python packages in its venv.
# Prints the image name (localhost/syncd:VERSION). Needs buildah, podman, skopeo, debootstrap.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
# shellcheck source=scripts/image-storage.sh
source "$HERE/image-storage.sh"
log() { echo "image-build: $*" >&2; }
for tool in buildah podman skopeo; do
  command -v "$tool" >/dev/null || { log "$tool is missing: apt-get install $tool (or make deps)"; exit 1; }
done
PY="${PYTHON:-.venv/bin/python}"
VERSION="$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
IMAGE="localhost/syncd:$VERSION"
OUT=build/image
BASE="${SYNCD_IMAGE_BASE:-$("$HERE/image-base.sh")}"
"$HERE/image-wheels.sh" >/dev/null
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
CREATED="$(git log -1 --format=%cI 2>/dev/null || echo unknown)"
log "buildah bud $IMAGE on $BASE"
buildah "${SYNCD_STORAGE_OPTS[@]}" bud --isolation chroot --layers --pull-never \
  --build-arg BASE="$BASE" --build-arg WHEELS=local \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
  --build-arg CREATED="$CREATED" \
  --label org.opencontainers.image.revision="$REVISION" --label org.opencontainers.image.created="$CREATED" \
  -t "$IMAGE" . >&2

mkdir -p "$OUT"
rm -rf "$OUT/syncd-$VERSION.oci"
skopeo copy --quiet --dest-compress-format gzip "$SYNCD_STORAGE_REF$IMAGE" "oci:$OUT/syncd-$VERSION.oci:$VERSION" >&2

# The SBOM: cyclonedx-py reads the venv's installed distributions (their METADATA files) from the
# image's mounted filesystem; the venv's python links to /usr/bin/python3, the host's, which is
# the same Python minor version as the image's (3.11) or cyclonedx-py stops.
CTR="$(buildah "${SYNCD_STORAGE_OPTS[@]}" from --pull-never "$IMAGE")"
trap 'buildah "${SYNCD_STORAGE_OPTS[@]}" rm "$CTR" >/dev/null' EXIT
ROOTFS="$(buildah "${SYNCD_STORAGE_OPTS[@]}" mount "$CTR")"
"$PY" -m cyclonedx_py environment --pyproject pyproject.toml --of JSON --output-reproducible \
  -o "$OUT/syncd-$VERSION.cdx.json" "$ROOTFS/opt/syncd/bin/python" >&2
buildah "${SYNCD_STORAGE_OPTS[@]}" umount "$CTR" >/dev/null
"$HERE/image-prune.sh" || log "could not prune old images (the store keeps growing)"
echo "$IMAGE"
