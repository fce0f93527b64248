# shellcheck shell=sh
# The prelude of every evidence pack's reproduce.sh (harness/src/evidence/script.rs writes REGISTRY, IMAGE
# and KNOWN_ISSUES before it, and the cell's commands after it). POSIX sh: the pack runs without bash.
set -u
PACK=$(cd "$(dirname "$0")" && pwd)
BUILDER=${BUILDER:-bkcache-evidence-$$}
RUN=${RUN:-evidence-$$}    # what it pushes is under bkcache-out/$RUN, bkcache-cache/$RUN (`bkcache gc` removes it)
WORK=$(mktemp -d)
LOGS=${LOGS:-$PACK/reproduce-logs}
held=0 broke=0 known=0 errors=0
trap 'docker buildx rm --force "$BUILDER" "$BUILDER-bases" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# The vertex ids (#N) of the steps of a plain-progress log whose name matches: `exact` (runs of white
# space count as one, as bkcache compares) or `re` (an extended regular expression). A vertex's first
# line is its name. (The pattern goes through the environment: `awk -v` would eat its backslashes.)
steps() {
  HOW=$2 WANT=$3 awk '
    function norm(s) { gsub(/[ \t]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return s }
    BEGIN { how = ENVIRON["HOW"]; want = ENVIRON["WANT"] }
    /^#[0-9]+ / && !($1 in seen) {
      seen[$1] = 1; name = substr($0, length($1) + 2)
      if ((how == "exact" && norm(name) == norm(want)) || (how == "re" && name ~ want)) print $1
    }' "$1"
}

# record held|broke KNOWN_ISSUE TEXT: counts one expectation, held, broken as the known issue, or broken.
record() {
  if [ "$1" = held ]; then
    held=$((held + 1)); echo "  held   $3"
  elif [ -n "$2" ]; then
    known=$((known + 1)); echo "  broke  $3 (known issue $2)"
  else
    broke=$((broke + 1)); echo "  BROKE  $3"
  fi
}

# expect PHASE cached|ran exact|re TEXT KNOWN_ISSUE: every matching step must be CACHED (or must run).
expect() {
  ids=$(steps "$LOGS/$1.log" "$3" "$4")
  if [ -z "$ids" ]; then
    errors=$((errors + 1)); echo "  ERROR  $1: no step matches $4"; return
  fi
  for id in $ids; do
    if grep -qx "$id CACHED" "$LOGS/$1.log"; then got=cached; else got=ran; fi
    if [ "$got" = "$2" ]; then record held "$5" "$1: $4 $got"; else record broke "$5" "$1: $4 $got, expected $2"; fi
  done
}

# expect_file PHASE same|differs OTHER_PHASE PATH KNOWN_ISSUE: PATH of PHASE's output against OTHER_PHASE's.
expect_file() {
  here="$WORK/out/$1$4" there="$WORK/out/$3$4"
  if [ ! -f "$there" ]; then
    errors=$((errors + 1)); echo "  ERROR  $1: the output of $3 has no $4"; return
  fi
  if [ ! -f "$here" ]; then record broke "$5" "$1: $4 is missing (the output of $3 has it)"; return; fi
  if cmp -s "$here" "$there"; then got=same said="the same bytes as in $3"; else got=differs said="other bytes than in $3"; fi
  if [ "$got" = "$2" ]; then record held "$5" "$1: $4 has $said"; else record broke "$5" "$1: $4 has $said"; fi
}

# build PHASE EXPECTED_ERROR KNOWN_ERROR BUILDX_ARGS...: 0 built, 1 failed as expected (the step
# expectations of a failed build cannot be judged), 2 failed otherwise (nothing after it can run).
build() {
  phase=$1 want=$2 explained=$3; shift 3
  echo "phase $phase: docker buildx build"
  if docker buildx "$@" > "$LOGS/$phase.log" 2>&1; then
    if [ -n "$want" ]; then
      broke=$((broke + 1)); echo "  BROKE  $phase: built, expected to fail with /$want/"
    fi
    return 0
  fi
  error=$(grep -E 'ERROR|failed to solve' "$LOGS/$phase.log" | tail -n 1)
  if [ -n "$want" ] && grep -qE "$want" "$LOGS/$phase.log"; then
    held=$((held + 1)); echo "  held   $phase: failed as expected: $error"; return 1
  elif [ -n "$want" ]; then
    broke=$((broke + 1)); echo "  BROKE  $phase: failed otherwise than /$want/: $error"; return 1
  elif [ -n "$explained" ] && grep -qE "$explained" "$LOGS/$phase.log"; then
    known=$((known + 1)); echo "  broke  $phase: BuildKit failed the build (known issue): $error"
  else
    broke=$((broke + 1)); echo "  BROKE  $phase: BuildKit failed the build: $error"
  fi
  return 2
}

# push_base TAG CONTENT DOCKERFILE BUILDX_ARGS...: a declared base's context, built and pushed on the
# helper builder ($BUILDER-bases), never on the builder under test.
push_base() {
  mkdir -p "$WORK/bases/$1"
  printf '%s' "$2" > "$WORK/bases/$1/content"
  printf '%s' "$3" > "$WORK/bases/$1/Dockerfile"
  log="$LOGS/base-$1.log"; shift 3
  docker buildx "$@" >> "$log" 2>&1 || { errors=$((errors + 1)); echo "  ERROR  cannot push the base: see $log"; finish; }
}

# delete_layers REF: deletes the layer blobs of the image REF ($REGISTRY/REPOSITORY:TAG) from its
# repository, as bkcache's delete-layers phase does; its manifest and config stay.
delete_layers() {
  path=${1#"$REGISTRY"/}; url="http://$REGISTRY/v2/${path%:*}"
  manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "$url/manifests/${path##*:}") || { errors=$((errors + 1)); echo "  ERROR  cannot read the manifest of $1"; finish; }
  for digest in $(printf '%s' "$manifest" | tr -d ' \n' | sed 's/.*"layers":\[//' | grep -o '"digest":"sha256:[0-9a-f]*"' | cut -d'"' -f4); do
    curl -fsS -X DELETE "$url/blobs/$digest" >/dev/null || { errors=$((errors + 1)); echo "  ERROR  cannot delete $digest of $1"; finish; }
  done
}

# delete_cache_layers DIR PATH: deletes the layer blobs of the local cache DIR that hold PATH (gzip or
# plain tars), as bkcache's delete-layers phase of a cache does; none is an error, as there.
delete_cache_layers() {
  n=0 rel=${2#/}
  for blob in "$1"/blobs/sha256/*; do
    if { tar tzf "$blob" 2>/dev/null || tar tf "$blob" 2>/dev/null; } | sed 's#^\./##; s#/$##' | grep -qxF "$rel"; then
      rm -f "$blob"; n=$((n + 1))
    fi
  done
  [ "$n" -gt 0 ] || { errors=$((errors + 1)); echo "  ERROR  no layer of $1 holds $2"; finish; }
}

finish() {
  if [ "$errors" -gt 0 ]; then verdict=error code=2
  elif [ "$broke" -gt 0 ]; then verdict=fail code=1
  elif [ "$known" -gt 0 ]; then verdict=known-failure code=0
  elif [ -n "$KNOWN_ISSUES" ]; then verdict=unexpected-pass code=0
  else verdict=pass code=0
  fi
  echo "verdict: $verdict ($held held, $broke broke, $known broke as known issues${KNOWN_ISSUES:+: $KNOWN_ISSUES}); logs in $LOGS"
  exit "$code"
}

mkdir -p "$LOGS"
