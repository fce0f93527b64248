# A step that fails on purpose when FAIL=1: BuildKit's solver reports the build failed, which bkcache
# must judge (not call infrastructure).
ARG BASE
FROM ${BASE}
RUN echo "before the failure" > /before
ARG FAIL=0
RUN test "$FAIL" != 1 || { echo "failing on purpose (FAIL=1)"; exit 3; }
