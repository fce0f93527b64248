ARG BASE
FROM ${BASE} AS build
RUN echo stable > /stable

FROM ${BASE}
COPY --from=build /stable /
ARG BUST
RUN echo "${BUST}" > /bust
