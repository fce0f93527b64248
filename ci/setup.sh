#!/usr/bin/env bash
# The README's set-up: everything `bkcache run` needs, on a fresh machine with no container registry in
# reach (the test-only tools are ci/test.sh's). Idempotent: each step checks what is there first, so a
# second run takes seconds.
source "$(dirname "$0")/lib.sh"

started=$SECONDS
bash "$CI_DIR/install-engine.sh"
bash "$CI_DIR/build-buildx.sh"
log "building bkcache"
(cd "$REPO_ROOT" && cargo build --quiet --release --locked -p bkcache)
bash "$CI_DIR/start-registry.sh"
# BuildKit images of the pinned releases, from the Go module (bkcache reuses an image that exists)
for version in "$BUILDKIT_BASELINE" "$BUILDKIT_NEWEST"; do
  image=$("$BKCACHE" buildkit build --version "$version" --pins "$CI_DIR/versions.env") ||
    die "the BuildKit $version image did not build (bkcache's error above)"
  log "BuildKit $version: $image"
done
# the local eStargz bases, pushed when the registry lacks them (and checked for eStargz annotations)
"$BKCACHE" setup bases --pins "$CI_DIR/versions.env" | while read -r base; do log "eStargz base $base"; done
log "ready in $((SECONDS - started))s: $BKCACHE"
