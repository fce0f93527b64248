#!/usr/bin/env bash
# Speed goals of bkcache (a benchmark, not a test): prints, in one run,
#  1. a bare shell script doing the #6893 cell's buildx commands on one builder (create, build with
#     --cache-to, prune, build with --cache-from, rm: the cell's evidence pack's reproduce.sh, which
#     bkcache writes from the functions that make its own commands) vs `bkcache run` of the same cell,
#     and their ratio (goal <= 1.05: the harness costs next to nothing over the commands it drives);
#  2. the patch matrix run at once (--jobs) vs the sum of its cells run one by one (goal <= 0.75);
#  3. one cell with --repeat 20 (repetitions at once, default --jobs) vs 20 separate `bkcache run`s of it
#     (goal <= 0.6); also --repeat 20 --fresh-builders (a new builder per repetition instead of a reset
#     one), for what builder reuse saves. Each side is 20 runs already, so it is measured P3_ROUNDS times
#     (default 1).
#  4. a new release image with warm Go caches (goal <= 60 s): `bkcache buildkit build --version
#     BENCH_RELEASE` (default v0.25.1) with the module cache warm and a Go build cache that has compiled
#     only BENCH_PREVIOUS (default v0.25.0), as on a machine that tested the previous release; the
#     previous release's build (into a fresh GOCACHE) is not timed. P4_ROUNDS times (default 1: each
#     round compiles BuildKit from scratch once, about 2 minutes, first).
#  5. parsing (harness/benches/parsing.rs): a rawjson stream parses at >= 100 MB/s, and `bkcache cache
#     inspect` of a generated 10,000-record cache takes < 100 ms.
# Medians of ROUNDS runs (default 5), the two sides of each ratio interleaved so drift hits both alike. Needs `bash ci/setup.sh` first; patched images are built on first use.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 2

ROUNDS=${ROUNDS:-5}
BENCH_RELEASE=${BENCH_RELEASE:-v0.25.1}
BENCH_PREVIOUS=${BENCH_PREVIOUS:-v0.25.0}
P4_ROUNDS=${P4_ROUNDS:-1}
P3_ROUNDS=${P3_ROUNDS:-1}
JOBS=${JOBS:-5}
bkcache="$REPO_ROOT/target/release/bkcache"
matrix=scenarios/patch-matrix/builders.toml
[ -x "$bkcache" ] || die "run bash ci/setup.sh first ($bkcache missing)"

now() { date +%s.%N; }
# seconds COMMAND...: wall time of one run (its output discarded; a failure stops the benchmark)
seconds() {
  local start; start=$(now)
  "$@" >/dev/null 2>&1 || die "benchmark command failed: $*"
  awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

art=$(mktemp -d); trap 'rm -rf "$art"' EXIT
bare_cell() { BUILDER="bkbench-$$-$RANDOM" sh "$art/pack/reproduce.sh"; }
one_cell() { "$bkcache" run scenarios/issue-6893.toml --jobs 1 --artifacts-dir "$art" "$@"; }
twenty_runs() { local _; for _ in $(seq 20); do one_cell --builder newest-stargz >/dev/null 2>&1 || return 1; done; }
repeated_cell() { "$bkcache" run scenarios/issue-6893.toml --builder newest-stargz --repeat 20 --artifacts-dir "$art" "$@"; }

log "building the parsing benchmark"
cargo bench --locked --bench parsing --no-run >/dev/null 2>&1 || die "cargo bench --bench parsing --no-run failed"
# new_release_image: prints the seconds BENCH_RELEASE's image took with a build cache of BENCH_PREVIOUS
new_release_image() {
  local cache; cache=$(mktemp -d)
  docker rmi "$REGISTRY_ADDR/bkcache/buildkit:$BENCH_PREVIOUS" "$REGISTRY_ADDR/bkcache/buildkit:$BENCH_RELEASE" >/dev/null 2>&1
  GOCACHE=$cache "$bkcache" buildkit build --version "$BENCH_PREVIOUS" >/dev/null 2>&1 || die "BuildKit $BENCH_PREVIOUS does not build"
  seconds env GOCACHE="$cache" "$bkcache" buildkit build --version "$BENCH_RELEASE"
  rm -rf "$cache"
}

log "warming up (builds any missing patched image; the evidence pack whose script is the bare side)"
"$bkcache" evidence scenarios/issue-6893.toml --builder newest-stargz --out "$art/pack" >/dev/null 2>&1 ||
  die "bkcache evidence failed"
"$bkcache" run scenarios/issue-6893.toml --builders "$matrix" --builder none-stargz --artifacts-dir "$art" >/dev/null 2>&1 || true
"$bkcache" run scenarios/issue-6893.toml --builders "$matrix" --artifacts-dir "$art" >/dev/null 2>&1 || true

# pairs ROUNDS CMD_A -- CMD_B: runs A then B, ROUNDS times; prints "median_a median_b"
pairs() {
  local a=() b=() seen=false x
  for x in "${@:2}"; do if [ "$x" = "--" ]; then seen=true; elif $seen; then b+=("$x"); else a+=("$x"); fi; done
  local ta=() tb=()
  for _ in $(seq "$1"); do ta+=("$("${a[@]}")"); tb+=("$("${b[@]}")"); done
  echo "$(printf '%s\n' "${ta[@]}" | median) $(printf '%s\n' "${tb[@]}" | median)"
}

profiles=$("$bkcache" list scenarios/issue-6893.toml --builders "$matrix" | awk '{ sub(/^issue-6893@/, "", $1); print $1 }')
cells_one_by_one() {
  local total=0 p
  for p in $profiles; do total=$(awk -v t="$total" -v s="$(seconds one_cell --builders "$matrix" --builder "$p")" 'BEGIN { print t + s }'); done
  echo "$total"
}
read -r bare harness < <(pairs "$ROUNDS" seconds bare_cell -- seconds one_cell --builder newest-stargz)
read -r sum together < <(pairs "$ROUNDS" cells_one_by_one -- seconds "$bkcache" run scenarios/issue-6893.toml --builders "$matrix" --jobs "$JOBS" --artifacts-dir "$art")
read -r separate repeated < <(pairs "$P3_ROUNDS" seconds twenty_runs -- seconds repeated_cell)
read -r fresh _ < <(pairs "$P3_ROUNDS" seconds repeated_cell --fresh-builders -- true)
read -r image _ < <(pairs "$P4_ROUNDS" new_release_image -- true)
parsing=$(cargo bench --locked --bench parsing 2>/dev/null) || die "cargo bench --bench parsing failed"

cat <<OUT
bench (median of $ROUNDS runs, $(nproc) cores):
  one cell (issue-6893 @ BuildKit $BUILDKIT_NEWEST stargz)
    bare buildx script      ${bare}s
    bkcache run             ${harness}s
    ratio                   $(ratio "$harness" "$bare")   (goal <= 1.05)
  patch matrix ($(echo "$profiles" | wc -w) cells)
    cells one by one (sum)  ${sum}s
    matrix, --jobs $JOBS      ${together}s
    ratio                   $(ratio "$together" "$sum")   (goal <= 0.75)
  repetitions (issue-6893 @ newest-stargz, 20 times, median of $P3_ROUNDS)
    20 separate runs        ${separate}s
    --repeat 20             ${repeated}s
    (--fresh-builders       ${fresh}s)
    ratio                   $(ratio "$repeated" "$separate")   (goal <= 0.6)
  new release image (BuildKit $BENCH_RELEASE, Go caches warm from $BENCH_PREVIOUS, median of $P4_ROUNDS)
    bkcache buildkit build  ${image}s   (goal <= 60)
$parsing
OUT
