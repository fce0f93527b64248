# moby/buildkit#6261: a build stage whose result only the final stage's COPY uses, so that once the COPY
# is CACHED the build stage's layer takes no part in the build.
ARG BASE
FROM ${BASE} AS build
RUN echo compiled > /artifact

FROM ${BASE}
COPY --from=build /artifact /app/artifact
