# A team's own base image, rebuilt under the same tag between two CI builds.
ARG APP_BASE
FROM ${APP_BASE}
RUN cat /bkcache-base-content > /base-seen
RUN head -c 32 /dev/urandom > /unique
