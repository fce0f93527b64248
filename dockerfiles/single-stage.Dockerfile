# One stage, no COPY --from: a step with content only a real run makes, then a step the BUST arg re-runs.
ARG BASE
FROM ${BASE}
RUN head -c 32 /dev/urandom > /unique
ARG BUST
RUN echo "$BUST" > /bust
