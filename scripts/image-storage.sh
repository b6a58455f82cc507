# Sourced by the image scripts: the options every buildah/podman/skopeo call shares, so that they
# all see one image store. The store is private to syncd (outside the repo, beside the other
# caches). Its driver is overlay where this machine lets root mount an overlayfs (a layer is then
# the files a step changed: a build writes megabytes), else vfs, which needs nothing but plain
# files but keeps every layer whole (each step copies the whole root filesystem: gigabytes per
# build). SYNCD_STORAGE_DRIVER=vfs|overlay chooses. One store per driver: a store cannot change
# its driver.
# shellcheck shell=bash
SYNCD_STORAGE_ROOT="${SYNCD_STORAGE_ROOT:-${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/containers}"
export SYNCD_STORAGE_ROOT
overlay_mounts() {
  [[ "$(id -u)" = 0 ]] || return 1
  local probe
  probe="$(mktemp -d)" || return 1
  mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    rm -rf "$probe"
    return 0
  fi
  rm -rf "$probe"
  return 1
}
if [[ -z "${SYNCD_STORAGE_DRIVER:-}" ]]; then
  if overlay_mounts; then SYNCD_STORAGE_DRIVER=overlay; else SYNCD_STORAGE_DRIVER=vfs; fi
fi
export SYNCD_STORAGE_DRIVER
# The vfs store keeps its historical folder name, so an existing cache stays valid.
STORE="$SYNCD_STORAGE_ROOT/storage"
[[ "$SYNCD_STORAGE_DRIVER" = vfs ]] || STORE="$SYNCD_STORAGE_ROOT/storage-$SYNCD_STORAGE_DRIVER"
SYNCD_STORAGE_OPTS=(--storage-driver "$SYNCD_STORAGE_DRIVER" --root "$STORE" --runroot "$SYNCD_STORAGE_ROOT/run-$SYNCD_STORAGE_DRIVER")
# skopeo names the store inside the image reference.
SYNCD_STORAGE_REF="containers-storage:[$SYNCD_STORAGE_DRIVER@$STORE+$SYNCD_STORAGE_ROOT/run-$SYNCD_STORAGE_DRIVER]"
export SYNCD_STORAGE_REF
