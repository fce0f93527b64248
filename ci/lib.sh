# shellcheck shell=bash
# Shared helpers for ci/*.sh. Source it; it sources versions.env too.
set -euo pipefail

CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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

# The bkcache binary ci/setup.sh builds first: the set-up's images and bases are made by it (one
# implementation, in Rust), not by shell.
BKCACHE="$REPO_ROOT/target/release/bkcache"
need_bkcache() { [ -x "$BKCACHE" ] || die "$BKCACHE is missing: run ci/setup.sh (it builds bkcache first)"; }
