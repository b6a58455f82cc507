#!/usr/bin/env bash
# Build the Dockerfile with buildah, without a Docker engine or any registry outside this machine:
#   - the base is debootstrapped here (scripts/image-base.sh, cached) unless SYNCD_IMAGE_BASE names
#     one the image store already holds; either way it is passed to the build as name@digest (the
#     digest of its manifest in the store), as the Dockerfile requires: the image's label
#     org.opencontainers.image.base.name records exactly which base it was built on;
#   - the builder stage gets its wheels from the context (WHEELS=local, scripts/image-wheels.sh);
#   - `buildah bud --isolation chroot`: the RUN steps run chrooted with the host's network and
#     no new user, PID or network namespace, which is what this sandbox allows (the OCI isolation
#     needs a runtime that sets rlimits and namespaces it refuses);
#   - unchanged inputs (every file the build reads, hashed) reuse the image built from them before,
#     without a build (see inputs_key below);
#   - --layers: unchanged steps come from the store's layer cache on the next build. buildah 1.28
#     reuses a LABEL step whose build-arg values changed, so the per-commit labels (revision,
#     created) are also given with --label, which applies at commit time.
# Then, beside the image, in build/image/: the image as an OCI layout (gzip layers, what a
# registry stores: its compressed size) and a CycloneDX SBOM of the Python packages in its venv
# and of the Debian packages in its dpkg status file.
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
if [[ "$BASE" != *@sha256:* ]]; then
  # The store's digest of the base's manifest, the one `buildah from NAME@DIGEST` resolves.
  DIGEST="$(podman "${SYNCD_STORAGE_OPTS[@]}" image inspect --format '{{.Digest}}' "$BASE")"
  [[ "$DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]] || { log "no digest for the base $BASE: '$DIGEST'"; exit 1; }
  NAME="$BASE"
  [[ "${NAME##*/}" == *:* ]] && NAME="${NAME%:*}"   # the tag goes, a registry's port stays
  BASE="$NAME@$DIGEST"
fi
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
CREATED="$(git log -1 --format=%cI 2>/dev/null || echo unknown)"

# Unchanged inputs, unchanged image: everything the build reads (the Dockerfile, the context
# .dockerignore lets in, this script, the base's digest, the labels' values) hashed, and an image
# of the store tagged with that hash stands for the build when build/image/ still holds its OCI
# layout and SBOM (make test again on the same tree: no two-minute build). Any change rebuilds.
inputs_key() {
  {
    printf '%s\n' "$BASE" "$VERSION" "$REVISION" "$CREATED"
    find Dockerfile .dockerignore scripts/image-build.sh pyproject.toml README.md requirements syncd \
      -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-32
}
KEY="$(inputs_key)"
BUILT="localhost/syncd-built:$KEY"
STAMP="$OUT/inputs"
if [[ "$(cat "$STAMP" 2>/dev/null)" == "$KEY" && -d "$OUT/syncd-$VERSION.oci" && -f "$OUT/syncd-$VERSION.cdx.json" ]] \
  && buildah "${SYNCD_STORAGE_OPTS[@]}" inspect --type image "$BUILT" >/dev/null 2>&1; then
  buildah "${SYNCD_STORAGE_OPTS[@]}" tag "$BUILT" "$IMAGE"
  log "inputs unchanged ($KEY): $IMAGE is the image built from them before"
  echo "$IMAGE"
  exit 0
fi
rm -f "$STAMP"

"$HERE/image-wheels.sh" >/dev/null
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
# The Debian packages, from the dpkg status file the Dockerfile keeps, join the Python ones as
# components of type library with a purl pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-N,
# after one component for the operating system itself.
"$PY" - "$ROOTFS" "$OUT/syncd-$VERSION.cdx.json" <<'EOF'
import json
import sys
from pathlib import Path
from urllib.parse import quote

rootfs, sbom_path = Path(sys.argv[1]), Path(sys.argv[2])
os_release = dict(
    line.split("=", 1) for line in (rootfs / "etc/os-release").read_text().splitlines() if "=" in line
)
os_release = {key: value.strip('"') for key, value in os_release.items()}
distro = f"{os_release.get('ID', 'debian')}-{os_release.get('VERSION_ID', '')}".rstrip("-")
packages = []
for paragraph in (rootfs / "var/lib/dpkg/status").read_text(encoding="utf-8").split("\n\n"):
    fields = {}
    for line in paragraph.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    if fields.get("Status", "").split()[-1:] != ["installed"]:
        continue
    name, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
    purl = f"pkg:deb/debian/{quote(name, safe='')}@{quote(version, safe='')}?arch={arch}&distro={distro}"
    component = {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
    if "Maintainer" in fields:
        component["publisher"] = fields["Maintainer"]
    packages.append(component)
if not packages:
    sys.exit(f"no installed package in {rootfs}/var/lib/dpkg/status")
sbom = json.loads(sbom_path.read_text(encoding="utf-8"))
operating_system = {
    "type": "operating-system",
    "bom-ref": f"os:{distro}",
    "name": os_release.get("ID", "debian"),
    "version": (rootfs / "etc/debian_version").read_text().strip(),
    "description": os_release.get("PRETTY_NAME", ""),
}
sbom["components"] = [*sbom.get("components", []), operating_system, *sorted(packages, key=lambda c: c["name"])]
sbom_path.write_text(json.dumps(sbom, indent=2) + "\n", encoding="utf-8")
print(f"image-build: SBOM: {len(packages)} Debian packages added", file=sys.stderr)
EOF
buildah "${SYNCD_STORAGE_OPTS[@]}" umount "$CTR" >/dev/null
# The inputs' tag on this image; the store keeps the images of the two newest sets of inputs
# (another checkout's, say) and lets the older go to the prune below (vfs: ~300 MB an image).
buildah "${SYNCD_STORAGE_OPTS[@]}" tag "$IMAGE" "$BUILT"
buildah "${SYNCD_STORAGE_OPTS[@]}" images --noheading --format '{{.CreatedAtRaw}} {{.Name}}:{{.Tag}}' \
  --filter reference=localhost/syncd-built | sort -r | tail -n +3 | awk '{print $NF}' \
  | xargs -r podman "${SYNCD_STORAGE_OPTS[@]}" untag >/dev/null 2>&1 || true
echo "$KEY" >"$STAMP"
"$HERE/image-prune.sh" || log "could not prune old images (the store keeps growing)"
echo "$IMAGE"
