# moby/buildkit#6893's reproducer (https://github.com/moby/buildkit/issues/6893) with its two public
# eStargz bases (ubuntu for the build stage, alpine for the final one) given as build args, since this
# machine reaches no registry but its own. The second RUN reads /stable: re-running it needs the first
# RUN's filesystem restored.
ARG BUILD_BASE
ARG FINAL_BASE
FROM ${BUILD_BASE} AS build
RUN echo stable > /stable
ARG BUST=0
RUN echo "$BUST" > /bust && cat /stable > /combined
FROM ${FINAL_BASE}
COPY --from=build /combined /combined
