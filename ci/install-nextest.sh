#!/usr/bin/env bash
# cargo-nextest, the test runner, from crates.io at the pinned version.
source "$(dirname "$0")/lib.sh"

if cargo nextest --version 2>/dev/null | grep -q "cargo-nextest ${NEXTEST_VERSION#v}"; then
  log "cargo-nextest $NEXTEST_VERSION already installed"
  exit 0
fi
log "installing cargo-nextest $NEXTEST_VERSION from crates.io (a few minutes on 2 cores)"
cargo install --quiet --locked cargo-nextest --version "$NEXTEST_VERSION"
