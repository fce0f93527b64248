#!/usr/bin/env bash
# The fault-injecting proxy the fault tests put in front of their own registries: ci/faultproxy/main.go
# (standard library only) built with the machine's Go into a local image named after the source's hash,
# `bkcache/faultproxy:<sha256[:12]>` (the tests derive the same tag). Skipped when the image exists.
source "$(dirname "$0")/lib.sh"

src="$CI_DIR/faultproxy/main.go"
image="bkcache/faultproxy:$(sha256sum "$src" | cut -c1-12)"
if image_present "$image"; then
  log "fault proxy image $image present"
  exit 0
fi
log "building the fault proxy image $image"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$work/faultproxy" "$src"
need_bkcache
"$BKCACHE" setup image --tag "$image" --binary "$work/faultproxy:/usr/bin/faultproxy" \
  --change 'ENTRYPOINT ["/usr/bin/faultproxy"]' >/dev/null
