#!/usr/bin/env bash
# The local registry on $REGISTRY_ADDR: Debian's docker-registry (distribution) packaged into a local image
# and run as the container $REGISTRY_CONTAINER (host network, restart unless-stopped, storage under
# $BKCACHE_STATE/registry so pushed images survive fresh clones). Its log is rotated (it serves every run
# on the machine, hundreds of requests per minute: unrotated it had grown to 435 MB) and has no access log
# beside the info lines, which name the same requests. A running registry started with other settings is
# started again with these.
source "$(dirname "$0")/lib.sh"

image=bkcache/registry:debian
name=$REGISTRY_CONTAINER

run_args=(--network host --restart unless-stopped --log-opt max-size=20m --log-opt max-file=2
  -e REGISTRY_LOG_ACCESSLOG_DISABLED=true -v "$BKCACHE_STATE/registry:/var/lib/registry")
settings=$(printf '%s\n' "${run_args[@]}" | sha256sum | cut -c1-12)
running_settings() { docker inspect -f '{{index .Config.Labels "bkcache.settings"}}' "$name" 2>/dev/null; }

if registry_answers && [ "$(running_settings)" = "$settings" ]; then
  log "registry answers on $REGISTRY_ADDR"
  exit 0
fi
if ! image_present "$image"; then
  log "packaging Debian's docker-registry into $image"
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  need_bkcache
  cat >"$work/config.yml" <<YML
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
  "$BKCACHE" setup image --tag "$image" --binary /usr/bin/docker-registry:/usr/bin/docker-registry \
    --file "$work/config.yml:/etc/docker/registry/config.yml" --dir /var/lib/registry \
    --change 'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]' >/dev/null
fi
docker rm -f "$name" >/dev/null 2>&1 || true
mkdir -p "$BKCACHE_STATE/registry"
log "starting $name on $REGISTRY_ADDR"
docker run -d --pull never --name "$name" --label "bkcache.settings=$settings" "${run_args[@]}" "$image" >/dev/null
wait_until 30 "the registry to answer on http://$REGISTRY_ADDR/v2/ (docker logs $name)" registry_answers
