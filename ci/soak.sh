#!/usr/bin/env bash
# Soak: N runs (default 50), alternately the #6893 cell on newest-stargz and a registry-cache cell on
# newest-overlayfs (it pushes blobs), each hit at a random moment (0-2.5 s in; a run takes 2-3 s) by one
# fault in turn: SIGINT, SIGTERM, SIGKILL (then `bkcache gc`), the registry stopped (started again after
# the run), the docker engine restarted (then `bkcache gc`), or none. After each run it checks that the
# run left no builder, container, volume, registry ref or work directory, and that a report it wrote is
# valid JSON; at the end, that the registry stores no blob it did not store before the soak. Prints the
# figures (exit codes per fault, problems). Needs `bash ci/setup.sh` first. Exit 1 on any problem.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 2

N=${N:-50}
bkcache="$REPO_ROOT/target/release/bkcache"
[ -x "$bkcache" ] || die "run bash ci/setup.sh first ($bkcache missing)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
faults=(sigint sigterm sigkill registry engine none)
scenarios=("scenarios/issue-6893.toml --builder newest-stargz"
  "harness/tests/scenarios/registry-cache.toml --builders scenarios/builders.toml --builder newest-overlayfs")
blobs() { docker exec "$REGISTRY_CONTAINER" find /var/lib/registry/docker/registry/v2/blobs -name data | sort; }
blobs >"$work/blobs-before"
declare -A outcomes=()
problems=0

problem() { log "run $1: $2"; problems=$((problems + 1)); }

# leftovers ID: what run ID left on the engine, in buildx and in the registry (tags: distribution keeps
# a repository's name in its catalog after its last manifest is deleted)
leftovers() {
  { docker ps -a --format '{{.Names}}'; docker volume ls --format '{{.Name}}'; docker buildx ls --format '{{.Name}}'; } |
    grep -F "bkcache-$1." || true
  local repo
  for repo in $(curl -sf "http://$REGISTRY_ADDR/v2/_catalog?n=1000" | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["repositories"]))' | grep -F "/$1/"); do
    curl -sf "http://$REGISTRY_ADDR/v2/$repo/tags/list" | grep -q '"tags":\[' && echo "$repo (tagged)"
  done
  return 0
}

for i in $(seq "$N"); do
  fault=${faults[$(((i - 1) % ${#faults[@]}))]}
  id="soak-$$-$i"
  report="$work/$id.json"
  # shellcheck disable=SC2086 # the scenario and its builder flags
  "$bkcache" run ${scenarios[$((i % 2))]} --run-id "$id" \
    --report-json "$report" --artifacts-dir "$work/artifacts" >"$work/$id.log" 2>&1 &
  pid=$!
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", r / 32768 * 2.5 }')"  # the fault's moment, not a readiness wait
  case $fault in
    sigint) kill -INT "$pid" 2>/dev/null || true ;;
    sigterm) kill -TERM "$pid" 2>/dev/null || true ;;
    sigkill) kill -KILL "$pid" 2>/dev/null || true ;;
    registry) docker stop "$REGISTRY_CONTAINER" >/dev/null ;;
    engine)
      pkill -x dockerd || true
      # dockerd removes its pid file when it has exited (pgrep would still see it as a zombie where
      # the init process does not reap)
      while [ -e /var/run/docker.pid ]; do sleep 0.2; done
      bash "$CI_DIR/install-engine.sh" >/dev/null 2>&1 || problem "$id ($fault)" "the engine did not come back"
      ;;
  esac
  rc=0; wait "$pid" || rc=$?
  if [ "$fault" = registry ]; then
    docker start "$REGISTRY_CONTAINER" >/dev/null
    wait_until 30 "the registry to answer again" registry_answers
  fi
  if [ "$fault" = engine ]; then
    bash "$CI_DIR/start-registry.sh" >/dev/null 2>&1 || problem "$id ($fault)" "the registry did not come back"
  fi
  if [ "$fault" = sigkill ] || [ "$fault" = engine ]; then
    "$bkcache" gc --artifacts-dir "$work/artifacts" --older-than-days 0 >>"$work/$id.log" 2>&1 || problem "$id ($fault)" "gc failed"
  fi
  outcomes["$fault exit $rc"]=$((${outcomes["$fault exit $rc"]:-0} + 1))

  left=$(leftovers "$id")
  [ -z "$left" ] || problem "$id ($fault)" "left behind: $left"
  if [ -e "$report" ]; then
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$report" 2>/dev/null ||
      problem "$id ($fault)" "its report is not valid JSON"
    # every directory the run kept is one its report names
    for d in "$work/artifacts/$id"/*/; do
      [ -d "$d" ] || continue
      grep -qF "$(basename "$d")" "$report" || problem "$id ($fault)" "work directory $d is in no report"
    done
  elif [ -d "$work/artifacts/$id" ] && [ "$fault" != sigkill ]; then
    [ -z "$(ls -A "$work/artifacts/$id")" ] || problem "$id ($fault)" "no report, but $work/artifacts/$id holds files"
  fi
  if [ "$fault" = sigkill ] && [ -e "$work/artifacts/$id" ]; then problem "$id ($fault)" "gc left its artifacts"; fi
done

"$bkcache" gc --artifacts-dir "$work/artifacts" --older-than-days 0 >"$work/gc.log" 2>&1 || problem gc "$(cat "$work/gc.log")"
grep -q "registry blobs collected" "$work/gc.log" || problem gc "the registry could not be collected: $(cat "$work/gc.log")"
new_blobs=$(comm -13 "$work/blobs-before" <(blobs) | wc -l)
[ "$new_blobs" -eq 0 ] || problem registry "$new_blobs blobs stored that were not before the soak"
echo "registry: $(wc -l <"$work/blobs-before") blobs before the soak, $(blobs | wc -l) after, $new_blobs new"

echo "soak: $N runs, $problems problems"
for k in "${!outcomes[@]}"; do echo "  $k: ${outcomes[$k]}"; done | sort
[ "$problems" -eq 0 ]
