# BuildKit's Dockerfile frontend refuses this file before any step runs: `bogus` is no mount type.
ARG BASE
FROM ${BASE}
RUN --mount=type=bogus,target=/x true
RUN echo hi > /hi
