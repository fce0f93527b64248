#!/usr/bin/env bash
# Two eStargz base images with different content, built FROM scratch from local root filesystems and pushed
# to the local registry as $REGISTRY_ADDR/bkcache/base-{a,b}:esgz. Skipped when the registry has them.
source "$(dirname "$0")/lib.sh"

BASES=(base-a base-b)
builder=bkcache-setup

manifest() {
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY_ADDR/v2/bkcache/$1/manifests/esgz"
}
# every layer of the base carries the eStargz annotations the stargz snapshotter needs to mount it lazily
is_estargz() {
  local m; m=$(manifest "$1") || return 1
  printf '%s' "$m" | python3 -c '
import json, sys
layers = json.load(sys.stdin)["layers"]
need = ("containerd.io/snapshot/stargz/toc.digest", "io.containers.estargz.uncompressed-size")
sys.exit(0 if layers and all(all(k in l.get("annotations", {}) for k in need) for l in layers) else 1)'
}

todo=()
for b in "${BASES[@]}"; do is_estargz "$b" || todo+=("$b"); done
if [ ${#todo[@]} -eq 0 ]; then
  log "eStargz bases already in the registry: ${BASES[*]}"
  exit 0
fi

work=$(mktemp -d)
cleanup() { docker buildx rm -f "$builder" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
printf 'debug = true\n[registry."%s"]\n  http = true\n  insecure = true\n' "$REGISTRY_ADDR" >"$work/buildkitd.toml"
docker buildx rm -f "$builder" >/dev/null 2>&1 || true
docker buildx create --name "$builder" --driver docker-container \
  --driver-opt network=host --driver-opt "image=$REGISTRY_ADDR/bkcache/buildkit:$BUILDKIT_NEWEST" \
  --buildkitd-config "$work/buildkitd.toml" --bootstrap >/dev/null

for b in "${todo[@]}"; do
  ctx="$work/$b"
  make_rootfs "$ctx/rootfs"
  # different content per base: a marker and a few MiB of payload, so lazy pulls have something to skip
  echo "$b" >"$ctx/rootfs/etc/bkcache-base"
  mkdir -p "$ctx/rootfs/opt/$b"
  for i in 1 2 3 4; do head -c 1048576 /dev/urandom >"$ctx/rootfs/opt/$b/blob$i"; done
  printf 'FROM scratch\nCOPY rootfs/ /\n' >"$ctx/Dockerfile"
  log "building eStargz base $REGISTRY_ADDR/bkcache/$b:esgz"
  docker buildx build --builder "$builder" --progress quiet --provenance=false --sbom=false \
    --output "type=image,name=$REGISTRY_ADDR/bkcache/$b:esgz,push=true,compression=estargz,force-compression=true,oci-mediatypes=true,registry.insecure=true" \
    "$ctx" >/dev/null
  is_estargz "$b" || die "$REGISTRY_ADDR/bkcache/$b:esgz was pushed without eStargz layer annotations"
done
