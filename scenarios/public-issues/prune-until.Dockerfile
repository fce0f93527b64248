# moby/buildkit#5436: a chain of steps, each a cache record whose parent is the one before.
ARG BASE
FROM ${BASE}
RUN echo one > /one
RUN echo two > /two
RUN echo three > /three
