# A #6893 variant: the build stage's output passes through a middle stage on the other base before the
# final stage uses it. BUST is only in the final stage, so every build- and mid-stage step is cacheable.
ARG BASE_BUILD
ARG BASE_FINAL

FROM ${BASE_BUILD} AS build
RUN echo stable > /stable

FROM ${BASE_FINAL} AS mid
COPY --from=build /stable /stable
RUN cat /stable > /mid

FROM ${BASE_FINAL}
COPY --from=mid /mid /mid
ARG BUST
RUN echo "$BUST" > /bust
