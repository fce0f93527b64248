# "How to debug buildkit caching?" (Docker forum): build args carry the commit (REPO_HASH, GIT_TREE,
# GIT_BLOB) and the proxies (http_proxy, https_proxy) on every build; the image is pushed with its cache
# inline and the next build takes --cache-from the image.
ARG BASE
FROM ${BASE}
RUN echo "installing dependencies" > /deps
ARG GIT_TREE
RUN echo "building tree $GIT_TREE" > /build
