# Sourced by the image scripts: the options every buildah/podman/skopeo call shares, so that they
# all see one image store. The store is private to syncd (outside the repo, beside the other
# caches) and uses the vfs driver: overlay needs a kernel overlayfs mount this sandbox may refuse,
# vfs needs nothing but plain files.
# shellcheck shell=bash
SYNCD_STORAGE_ROOT="${SYNCD_STORAGE_ROOT:-${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/containers}"
export SYNCD_STORAGE_ROOT
SYNCD_STORAGE_OPTS=(--storage-driver vfs --root "$SYNCD_STORAGE_ROOT/storage" --runroot "$SYNCD_STORAGE_ROOT/run")
# skopeo names the store inside the image reference.
SYNCD_STORAGE_REF="containers-storage:[vfs@$SYNCD_STORAGE_ROOT/storage+$SYNCD_STORAGE_ROOT/run]"
export SYNCD_STORAGE_REF
