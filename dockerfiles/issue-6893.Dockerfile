# moby/buildkit#6893: a build stage on one base, a final stage on a different base that COPYs from it.
# With a lazy snapshotter, --cache-to type=local,mode=max drops the build stage's cache layers.
ARG BASE_BUILD
ARG BASE_FINAL

FROM ${BASE_BUILD} AS build
RUN echo stable > /stable
# declared after the stable step, so only the next step's cache key depends on it
ARG BUST
RUN echo "$BUST" > /bust

FROM ${BASE_FINAL}
COPY --from=build /stable /bust /
