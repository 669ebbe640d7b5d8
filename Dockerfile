# syntax=docker/dockerfile:1
#
# The hub's image: one image for every component; the container's command names the
# component (docs/operations.md, Processes):
#
#   docker build -t passport-hub:0.1.0 .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=kafka:9092 passport-hub:0.1.0 passport
#
# Two stages: the first installs the project (`pip install .`, runtime dependencies only,
# no dev extra) into a virtual environment; the second copies that environment onto a
# clean base, so no build tool, cache or source tree ends up in the image.
# Checked by tests/unit/test_dockerfile.py (hadolint, and a build of the context this
# file sees through .dockerignore).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
RUN python -m venv /opt/passport-hub

# The metadata first, then the packages: what `pip install .` needs, nothing else
# (.dockerignore admits only these).
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY hub ./hub
COPY connectors ./connectors
COPY services ./services
# Byte-compiled here: at run time the root file system is read-only (compose read_only,
# k8s readOnlyRootFilesystem), so Python could not write its caches then.
RUN /opt/passport-hub/bin/pip install --no-cache-dir . \
    && /opt/passport-hub/bin/python -m compileall -q /opt/passport-hub/lib


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="passport-hub" \
      org.opencontainers.image.description="Event backbone of the Passeport pour l'économie numérique" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid: the k8s manifests name it (runAsUser, fsGroup) and the
# data directory below belongs to it, so named volumes mounted there are writable.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --no-create-home \
       --home-dir /var/lib/passport-hub --shell /usr/sbin/nologin hub \
    && install -d -o hub -g hub -m 0750 /var/lib/passport-hub

COPY --from=build /opt/passport-hub /opt/passport-hub

# What every container of the hub shares (docs/operations.md, Processes): listen on all
# interfaces on fixed ports (8080 the API, 9400 a processor's /metrics /livez /readyz),
# log JSON, keep state in the data directory. Compose and k8s restate these explicitly.
ENV PATH=/opt/passport-hub/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PASSPORT_HUB_DATA_DIR=/var/lib/passport-hub \
    PASSPORT_HUB_API_HOST=0.0.0.0 \
    PASSPORT_HUB_API_PORT=8080 \
    PASSPORT_HUB_METRICS_HOST=0.0.0.0 \
    PASSPORT_HUB_METRICS_PORT=9400 \
    PASSPORT_HUB_LOG_FORMAT=json

# Not the data directory: Settings reads an optional ./passport-hub.env, which must not
# come from a volume.
WORKDIR /opt/passport-hub
USER 10001:10001
VOLUME ["/var/lib/passport-hub"]
EXPOSE 8080 9400

# `passport-hub run NAME` runs the component in this process (PID 1 is Python, which
# handles SIGTERM: the batch in hand is finished, the outbox relayed). NAME is one of
# api, passport, routing, crm_webhook, file_drop (hub/components.py).
ENTRYPOINT ["passport-hub", "run"]
CMD ["api"]
