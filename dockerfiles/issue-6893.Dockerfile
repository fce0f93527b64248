# moby/buildkit#6893: a build stage on one base, a final stage on a different base that COPYs from it.
# With a lazy snapshotter, --cache-to type=local,mode=max drops the build stage's cache layers.
ARG BASE_BUILD
ARG BASE_FINAL

FROM ${BASE_BUILD} AS build
ARG BUST
RUN echo stable > /stable
RUN echo "$BUST" > /bust

FROM ${BASE_FINAL}
COPY --from=build /stable /bust /
