# The same RUN, on the same base, in two stages: one op, one cache record, whichever stage runs it.
ARG BASE
FROM ${BASE} AS tools
RUN echo "shared toolchain" > /toolchain
RUN echo tools > /tools

FROM ${BASE} AS app
RUN echo "shared toolchain" > /toolchain
ARG BUST
RUN echo "app $BUST" > /app
COPY --from=tools /tools /tools
