#!/usr/bin/env bash
# The README's test command: set up the environment (idempotent), then every test with cargo-nextest,
# the end-to-end tests on real BuildKit included. BKCACHE_E2E_REQUIRED=1 makes a missing environment
# a test failure (never a silent skip).
source "$(dirname "$0")/lib.sh"

bash "$CI_DIR/setup.sh"
cd "$REPO_ROOT"
BKCACHE_E2E_REQUIRED=1 cargo nextest run --workspace --locked --no-fail-fast "$@"
