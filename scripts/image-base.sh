#!/usr/bin/env bash
# Build (once) a minimal Debian base image with Python for the container-image test, and print its
# name. No registry outside this machine is reachable, so python:3.11-slim cannot be pulled: the
# base is made here from Debian packages (debootstrap --variant=minbase + python3, python3-venv,
# ca-certificates), cached as a root-filesystem tarball by release and package set outside the
# repo, and imported into the image store when that store lacks it.
#
#   SYNCD_DEBIAN_RELEASE   bookworm (its python3 is 3.11, like python:3.11-slim)
#   SYNCD_DEBIAN_MIRROR    default: the first Debian URI in /etc/apt/sources.list*
#
# The image store is private to syncd (see scripts/image-storage.sh). Prints localhost/NAME:TAG
# on stdout; progress goes to stderr. Needs root (debootstrap) and the Debian packages
# debootstrap + podman.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RELEASE="${SYNCD_DEBIAN_RELEASE:-bookworm}"
PACKAGES="python3 python3-venv ca-certificates"
CACHE_ROOT="${SYNCD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd}/image-base"
HASH="$(printf '%s\n' $PACKAGES | sort | sha256sum | cut -c1-12)"
TARBALL="$CACHE_ROOT/$RELEASE-$HASH.tar"
IMAGE="localhost/syncd-base:$RELEASE-$HASH"

log() { echo "image-base: $*" >&2; }
need() { command -v "$1" >/dev/null || { log "$1 is missing: apt-get install $2 (or make deps)"; exit 1; }; }
need podman podman

# shellcheck source=scripts/image-storage.sh
source "$HERE/image-storage.sh"

if [[ ! -s "$TARBALL" ]]; then
  need debootstrap debootstrap
  [[ "$(id -u)" = 0 ]] || { log "debootstrap needs root"; exit 1; }
  MIRROR="${SYNCD_DEBIAN_MIRROR:-}"
  if [[ -z "$MIRROR" ]]; then
    MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
      | grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')" || true
  fi
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  mkdir -p "$CACHE_ROOT"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  log "debootstrap $RELEASE + ($PACKAGES) from $MIRROR (about a minute, once)"
  debootstrap --variant=minbase --include="${PACKAGES// /,}" "$RELEASE" "$WORK/root" "$MIRROR" >&2
  # What a slim base drops: apt lists, caches, docs, man pages, logs.
  rm -rf "$WORK/root"/var/lib/apt/lists/* "$WORK/root"/var/cache/apt/*.bin "$WORK/root"/var/cache/apt/archives/*.deb \
    "$WORK/root"/usr/share/doc/* "$WORK/root"/usr/share/man/* "$WORK/root"/usr/share/info/* \
    "$WORK/root"/var/log/*.log "$WORK/root"/var/log/apt/* "$WORK/root"/debootstrap
  tar --numeric-owner -C "$WORK/root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi

if ! podman "${SYNCD_STORAGE_OPTS[@]}" image exists "$IMAGE"; then
  log "importing $TARBALL as $IMAGE"
  podman "${SYNCD_STORAGE_OPTS[@]}" import --change 'CMD ["/usr/bin/python3"]' "$TARBALL" "$IMAGE" >&2
fi
echo "$IMAGE"
