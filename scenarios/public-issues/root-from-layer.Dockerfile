# moby/buildkit#1906: the base image (the FROM, a root of the build) and one step on top of it that a
# build arg changes.
ARG BASE
FROM ${BASE}
ARG ARTIFACT
RUN echo "$ARTIFACT" > /artifact
