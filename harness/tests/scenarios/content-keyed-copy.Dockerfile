# The final stage copies two files from the build stage, whose steps re-run when BUST changes: one file's
# content stays the same, the other's changes.
ARG BASE_BUILD
ARG BASE_FINAL
FROM ${BASE_BUILD} AS build
ARG BUST
RUN echo "${BUST}" > /bust
RUN echo stable > /stable && echo "${BUST}" > /changing

FROM ${BASE_FINAL}
COPY --from=build /stable /stable
COPY --from=build /changing /changing
