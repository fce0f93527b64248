ARG BASE
FROM ${BASE}
RUN echo stable > /stable
ARG BUST
RUN echo "${BUST}" > /bust
