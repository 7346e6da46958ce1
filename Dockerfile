# feedhub container image: docs/docker.md says how to build, run and operate it.
#
# BASE is any Debian-like image with Python 3.11+ and the venv module: the official
# python:*-slim images, or a plain Debian bookworm with python3 and python3-venv installed
# (scripts/container-check builds one with debootstrap where no registry of images is reachable).
# Nothing below relies on the python image's own layout: the application lives in its own
# virtualenv under /opt/feedhub, created by whichever `python3` the base provides.
ARG BASE=python:3.12-slim

# ---- builder: build every wheel, then install them into a fresh virtualenv ---------------------
FROM ${BASE} AS builder

# Optional, for builds behind a package mirror or a TLS-intercepting proxy. Unset by default, so
# pip uses PyPI and its own certificate bundle. A private CA bundle comes in as the build secret
# `pip-ca` (then PIP_CERT=/run/secrets/pip-ca): a secret is mounted only into the steps that ask
# for it and leaves no trace in any layer. Build arguments are not kept in the final image.
ARG PIP_INDEX_URL
ARG PIP_CERT

ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
# --upgrade-deps: a current pip builds setup.py-only sources (feedgen) through PEP 517; the
# pip 23.0 of Debian bookworm's venv tries `setup.py bdist_wheel` and fails without `wheel`.
RUN --mount=type=secret,id=pip-ca \
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    && python3 -m venv --upgrade-deps /opt/feedhub

# Only what the wheel is made of: the .dockerignore keeps the rest of the tree out anyway.
COPY pyproject.toml README.md ./
COPY src/ src/

# `pip wheel` resolves and builds the application and all its dependencies (with the sentence
# encoder the classifier uses when `categorize.encoder` is auto or use) into /wheels; the
# install that follows uses nothing but those wheels.
RUN --mount=type=secret,id=pip-ca \
    /opt/feedhub/bin/pip wheel --wheel-dir /wheels ".[semantic]" \
    && /opt/feedhub/bin/pip install --no-index --find-links /wheels "feedhub[semantic]" \
    && /opt/feedhub/bin/feedhub --version

# ---- runtime -----------------------------------------------------------------------------------
FROM ${BASE}

LABEL org.opencontainers.image.title="feedhub" \
      org.opencontainers.image.description="Self-hosted aggregator for regional news feeds" \
      org.opencontainers.image.licenses="Apache-2.0"

# The image sets storage explicitly: it overrides storage.url in the config file, so a mounted
# config cannot point the database outside the volume by accident. Set FEEDHUB_STORAGE_URL at
# run time to use PostgreSQL instead.
ENV PATH=/opt/feedhub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    FEEDHUB_CONFIG=/config/feedhub.yaml \
    FEEDHUB_STORAGE_URL=sqlite:////data/feedhub.db

# A fixed, unprivileged uid/gid (10001) so that bind-mounted data directories can be chowned to it.
RUN groupadd --system --gid 10001 feedhub \
    && useradd --system --uid 10001 --gid feedhub --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin feedhub \
    && mkdir -p /data /config \
    && chown feedhub:feedhub /data

COPY --from=builder /opt/feedhub /opt/feedhub
# Default configuration (feedhub.yaml, demo.yaml, the JSON Schema); mount ./config over it.
COPY config/ /config/

# With / as the working directory the project's relative defaults (config/feedhub.yaml,
# sqlite:///data/feedhub.db) also resolve to /config and /data when the variables above are unset.
WORKDIR /
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080

# The slim images have no curl: ask /healthz with the standard library (503 and errors exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; r = u.urlopen('http://127.0.0.1:8080/healthz', timeout=4); sys.exit(r.status != 200)"]

# Exec form: feedhub is PID 1 and gets SIGTERM itself; it stops cleanly and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["feedhub"]
CMD ["run", "--role", "all", "--host", "0.0.0.0", "--port", "8080"]
