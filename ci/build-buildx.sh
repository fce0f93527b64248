#!/usr/bin/env bash
# docker buildx from its Go module at the pinned version, installed as a docker CLI plugin.
source "$(dirname "$0")/lib.sh"

plugin=/usr/local/lib/docker/cli-plugins/docker-buildx
if [ -x "$plugin" ] && "$plugin" version 2>/dev/null | grep -q " $BUILDX_VERSION "; then
  log "buildx $BUILDX_VERSION already installed"
  exit 0
fi
log "building buildx $BUILDX_VERSION from its Go module"
src=$(go mod download -json "github.com/docker/buildx@$BUILDX_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
work=$(mktemp -d); trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/" && chmod -R u+w "$work"
(cd "$work" && rm -rf vendor && CGO_ENABLED=0 go build -mod=mod -trimpath \
  -ldflags "-s -w -X github.com/docker/buildx/version.Version=$BUILDX_VERSION -X github.com/docker/buildx/version.Revision=gomod" \
  -o "$work/docker-buildx" ./cmd/buildx)
install -D -m 0755 "$work/docker-buildx" "$plugin"
built=$("$plugin" version) || die "the buildx plugin just built ($plugin) does not run"
log "installed $built"
