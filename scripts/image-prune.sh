#!/usr/bin/env bash
# Remove what earlier image builds left in syncd's image store, keeping the newest KEEP (default 4)
# untagged images: the builder stage of the last build, which is the layer cache of the next one.
# Why: each build leaves the previous syncd image and its builder stage untagged, and the store
# had grown to 14 GB and filled the disk (with the vfs driver, which keeps every layer whole,
# ~300 MB an image; an overlay store grows slower, by the files each step changed). Removing an image can leave its parent untagged, so it
# runs in rounds. An image a running build still uses refuses removal and is kept.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/image-storage.sh
source "$HERE/image-storage.sh"
KEEP="${KEEP:-4}"
for _round in 1 2 3 4 5 6; do
  OLD="$(buildah "${SYNCD_STORAGE_OPTS[@]}" images --noheading --no-trunc --filter dangling=true \
    --format '{{.CreatedAtRaw}} {{.ID}}' | sort -r | tail -n +$((KEEP + 1)) | awk '{print $NF}')"
  [ -n "$OLD" ] || break
  removed=0
  for id in $OLD; do
    buildah "${SYNCD_STORAGE_OPTS[@]}" rmi "$id" >/dev/null 2>&1 && removed=$((removed + 1))
  done
  echo "image-prune: removed $removed old untagged images" >&2
  [ "$removed" -gt 0 ] || break
done
