# The #6893 shape with content that only a real run makes: each RUN writes random bytes, so a step
# restored from the cache gives the export build's bytes and a step that ran again gives new ones.
ARG BASE_BUILD
ARG BASE_FINAL

FROM ${BASE_BUILD} AS build
RUN head -c 32 /dev/urandom > /unique
ARG BUST
RUN head -c 32 /dev/urandom > /bust && echo "$BUST" >> /bust

FROM ${BASE_FINAL}
COPY --from=build /unique /bust /
