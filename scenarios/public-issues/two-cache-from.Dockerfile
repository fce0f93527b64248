# Two stages whose caches come from two different exports, imported together.
ARG BASE
FROM ${BASE} AS frontend
ARG FRONTEND
RUN echo "frontend $FRONTEND" > /frontend

FROM ${BASE} AS backend
ARG BACKEND
RUN echo "backend $BACKEND" > /backend

FROM ${BASE}
COPY --from=frontend /frontend /frontend
COPY --from=backend /backend /backend
