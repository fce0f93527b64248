#!/usr/bin/env bash
# Docker engine from Debian's packages, started if nothing answers; the capability workaround only
# where the host's bounding set needs it (see ci/runc-capfix).
source "$(dirname "$0")/lib.sh"

# the tests check every shell file with shellcheck (harness/tests/shell.rs)
APT_PACKAGES=(docker.io containerd runc docker-registry busybox-static curl shellcheck)

missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Capabilities runc may need but this host cannot grant (bit clear in CapBnd among the first 41).
needs_capfix() {
  local bnd; bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  [ $(( bnd & ((1 << 41) - 1) )) -ne $(( (1 << 41) - 1 )) ]
}

# install_capfix: ci/runc-capfix built with the machine's Go, its tests passed first, when the installed one
# was built from other sources (a stamp beside it names their hash). Renamed into place: the shim may be
# running the old one.
capfix=/usr/local/lib/bkcache/runc-capfix
install_capfix() {
  local src=$CI_DIR/runc-capfix hash
  hash=$(cat "$src"/*.go | sha256sum | cut -c1-12)
  [ -x "$capfix" ] && [ "$(cat "$capfix.src" 2>/dev/null)" = "$hash" ] && return
  log "building the runc-capfix runtime ($hash)"
  (cd "$src" && CGO_ENABLED=0 go test -count=1 main.go main_test.go >&2) || die "ci/runc-capfix's tests failed"
  mkdir -p "$(dirname "$capfix")"
  (cd "$src" && CGO_ENABLED=0 go build -o "$capfix.new" main.go) || die "ci/runc-capfix does not build"
  mv -f "$capfix.new" "$capfix"
  echo "$hash" >"$capfix.src"
}

daemon_json=/etc/docker/daemon.json
restart_needed=false
if needs_capfix; then
  install_capfix
  mkdir -p /etc/docker
  if python3 - "$daemon_json" "$capfix" <<'PY'
import json, os, sys
path = sys.argv[1]
cfg = json.load(open(path)) if os.path.exists(path) else {}
want = {"path": sys.argv[2]}
if cfg.get("runtimes", {}).get("bkcache-runc") == want and cfg.get("default-runtime") == "bkcache-runc":
    sys.exit(1)
cfg.setdefault("runtimes", {})["bkcache-runc"] = want
cfg["default-runtime"] = "bkcache-runc"
json.dump(cfg, open(path, "w"), indent=2)
PY
  then
    log "host lacks capabilities in its bounding set: registered the runc-capfix runtime in $daemon_json"
    restart_needed=true
  fi
fi

if docker_answers; then
  if $restart_needed; then
    log "reloading dockerd so it picks up the runtime"
    pkill -HUP -x dockerd
    wait_until 30 "dockerd to answer after reload" docker_answers
  fi
else
  log "starting dockerd (log: /var/log/bkcache-dockerd.log)"
  setsid nohup dockerd >>/var/log/bkcache-dockerd.log 2>&1 < /dev/null &
  wait_until 60 "dockerd to answer on /var/run/docker.sock (see /var/log/bkcache-dockerd.log)" docker_answers
fi
log "docker engine $(curl -sf --unix-socket /var/run/docker.sock http://localhost/version | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["Version"], "API", v["ApiVersion"])')"
