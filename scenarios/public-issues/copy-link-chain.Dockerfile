# moby/buildkit#5297: an image assembled from parts with a chain of COPY --link --from.
ARG BASE
ARG PART_A
ARG PART_B
ARG PART_C
FROM ${PART_A} AS part-a
FROM ${PART_B} AS part-b
FROM ${PART_C} AS part-c
FROM ${BASE}
COPY --link --from=part-a /bkcache-base-content /a
COPY --link --from=part-b /bkcache-base-content /b
COPY --link --from=part-c /bkcache-base-content /c
