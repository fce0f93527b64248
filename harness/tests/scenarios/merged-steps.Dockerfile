# Two stages run the same instruction on the same base: BuildKit builds it once and shows one name.
ARG BASE
FROM ${BASE} AS one
RUN echo same > /same
FROM ${BASE} AS two
RUN echo same > /same
FROM ${BASE}
COPY --from=one /same /a
COPY --from=two /same /b
