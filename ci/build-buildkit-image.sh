#!/usr/bin/env bash
# Usage: ci/build-buildkit-image.sh VERSION
# A BuildKit image built from the github.com/moby/buildkit Go module at VERSION: static buildkitd and
# buildctl, runc, busybox. Named under the local registry ($REGISTRY_ADDR/bkcache/buildkit:VERSION) so the
# docker-container driver's pull attempt stays on loopback; never moby/buildkit:*.
source "$(dirname "$0")/lib.sh"

version=${1:?usage: build-buildkit-image.sh VERSION}
tag="$REGISTRY_ADDR/bkcache/buildkit:$version"
if image_present "$tag"; then
  log "BuildKit image $tag already built"
  exit 0
fi

log "building BuildKit $version from its Go module into $tag"
src=$(go mod download -json "github.com/moby/buildkit@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
  || die "the Go module proxy does not serve github.com/moby/buildkit@$version"
work=$(mktemp -d); trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/src/" 2>/dev/null || { mkdir -p "$work/src" && cp -r "$src/." "$work/src/"; }
chmod -R u+w "$work/src"
rm -rf "$work/src/vendor"
ldflags="-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Revision=gomod -extldflags -static"
for cmd in buildkitd buildctl; do
  (cd "$work/src" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags "osusergo netgo static_build" \
    -ldflags "$ldflags" -o "$work/$cmd" "./cmd/$cmd")
done

root="$work/rootfs"
make_rootfs "$root" "$work/buildkitd" "$work/buildctl" /usr/sbin/runc
mkdir -p "$root"/{var/lib/buildkit,etc/buildkit}
import_rootfs "$root" "$tag" \
  'ENTRYPOINT ["buildkitd"]' 'VOLUME /var/lib/buildkit' \
  "LABEL org.opencontainers.image.version=$version" "LABEL io.bkcache.buildkit.source=github.com/moby/buildkit@$version"
log "built $tag ($(docker run --rm --pull never --network host --entrypoint buildkitd "$tag" --version))"
