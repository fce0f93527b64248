#!/usr/bin/env bash
# actionlint, the GitHub Actions workflow checker the tests run on ci/github/bkcache.yml, from its Go
# module at the pinned version.
source "$(dirname "$0")/lib.sh"

if actionlint -version 2>/dev/null | grep -qx "$ACTIONLINT_VERSION"; then
  log "actionlint $ACTIONLINT_VERSION already installed"
  exit 0
fi
log "building actionlint $ACTIONLINT_VERSION from its Go module"
GOBIN=/usr/local/bin go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
built=$(actionlint -version) || die "the actionlint just installed does not run"
log "installed actionlint ${built%%$'\n'*}"
