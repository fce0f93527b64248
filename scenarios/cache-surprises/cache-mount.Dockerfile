# moby/buildkit#1474: a cache mount's contents are builder state, never part of an exported cache.
ARG BASE
FROM ${BASE}
RUN --mount=type=cache,target=/cache head -c 16 /dev/urandom > /cache/seed && cp /cache/seed /seen
ARG BUST
# BUST only changes the command (sh's $0), so the step runs again; what it writes is the mount's listing
RUN --mount=type=cache,target=/cache sh -c 'ls /cache > /listing' "bust-$BUST"
