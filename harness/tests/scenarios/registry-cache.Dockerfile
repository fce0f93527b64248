ARG BASE
FROM ${BASE}
# random bytes: every build's layer is a blob no other build pushes
RUN head -c 64 /dev/urandom > /unique
ARG BUST
RUN echo "${BUST}" > /bust
