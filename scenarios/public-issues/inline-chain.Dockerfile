# moby/buildkit#2274, #3730: each build takes --cache-from the previous build's image and pushes its own
# with the cache inline.
ARG BASE
FROM ${BASE}
RUN echo "dependencies" > /deps
RUN echo "app" > /app
