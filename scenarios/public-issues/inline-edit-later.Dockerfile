# moby/buildkit#3660: the dependencies step comes first; each build edits only the later step (APP).
ARG BASE
FROM ${BASE}
RUN echo "dependencies" > /deps
ARG APP
RUN echo "$APP" > /app
