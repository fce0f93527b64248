# A build stage and a final stage on the same base; the final stage's BUST step comes before the COPY,
# so a new BUST makes the COPY run, and the COPY needs the build stage's result.
ARG BASE
FROM ${BASE} AS build
RUN echo "compiled" > /artifact

FROM ${BASE}
RUN echo "runtime deps" > /deps
ARG BUST
RUN echo "$BUST" > /bust
COPY --from=build /artifact /artifact
