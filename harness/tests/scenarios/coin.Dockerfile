# A genuinely non-deterministic cell on real BuildKit: the `coin` stage writes a random bit; the final
# stage's COPY --from=coin has a content-based cache key, so the second build finds it CACHED only when
# the bit came out the same as in the first build (p = 1/2).
ARG BASE
FROM ${BASE} AS coin
ARG TOSS
RUN echo "$TOSS" > /toss && head -c 1 /dev/urandom | od -An -tu1 | awk '{ print $1 % 2 }' > /coin

FROM ${BASE}
COPY --from=coin /coin /coin
