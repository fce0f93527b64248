#!/usr/bin/env bash
# The local registry on $REGISTRY_ADDR: Debian's docker-registry (distribution) packaged into a local image
# and run as the container $REGISTRY_CONTAINER (host network, restart unless-stopped, storage under
# $BKCACHE_STATE/registry so pushed images survive fresh clones).
source "$(dirname "$0")/lib.sh"

image=bkcache/registry:debian
name=$REGISTRY_CONTAINER

if registry_answers; then
  log "registry answers on $REGISTRY_ADDR"
  exit 0
fi
if ! image_present "$image"; then
  log "packaging Debian's docker-registry into $image"
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  make_rootfs "$work/rootfs" /usr/bin/docker-registry
  mkdir -p "$work/rootfs/etc/docker/registry" "$work/rootfs/var/lib/registry"
  cat >"$work/rootfs/etc/docker/registry/config.yml" <<YML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YML
  import_rootfs "$work/rootfs" "$image" \
    'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]'
fi
docker rm -f "$name" >/dev/null 2>&1 || true
mkdir -p "$BKCACHE_STATE/registry"
log "starting $name on $REGISTRY_ADDR"
docker run -d --pull never --name "$name" --network host --restart unless-stopped \
  -v "$BKCACHE_STATE/registry:/var/lib/registry" "$image" >/dev/null
wait_until 30 "the registry to answer on http://$REGISTRY_ADDR/v2/ (docker logs $name)" registry_answers
