# shellcheck shell=bash
# Shared helpers for ci/*.sh. Source it; it sources versions.env too.
set -euo pipefail

CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT=$(cd "$CI_DIR/.." && pwd)
# shellcheck source=versions.env
source "$CI_DIR/versions.env"

# Persistent state outside the checkout: build caches and registry storage survive fresh clones,
# which is what keeps a second set-up run under a minute.
BKCACHE_STATE=${BKCACHE_STATE:-/var/lib/bkcache}
mkdir -p "$BKCACHE_STATE"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds (readiness, not a fixed sleep).
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

docker_answers() { curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null; }
registry_answers() { curl -sf "http://$REGISTRY_ADDR/v2/" >/dev/null; }

# image_present REF: whether the local docker engine has REF.
image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# make_rootfs DIR BINARY...: a minimal root filesystem: busybox-static with its applet links, the given
# binaries with the shared libraries they link, and the files a container expects to find.
make_rootfs() {
  local root=$1; shift
  mkdir -p "$root"/{bin,usr/bin,etc,tmp,run,root,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  local bin lib
  for bin in "$@"; do
    cp -L "$bin" "$root/usr/bin/"
    for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' || true); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

# import_rootfs DIR TAG CHANGE...: imports DIR as image TAG (docker import; no Dockerfile build, no pull).
import_rootfs() {
  local root=$1 tag=$2; shift 2
  local changes=() c
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$root" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
}
