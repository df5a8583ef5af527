# One image for the ticket service and the exporter (docker-compose.yml runs it
# with a different command for each).
#
#   docker build -t partnerwatch .
#   docker run partnerwatch python -m exporter --config exporter/partnerwatch.yml
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The runtime dependencies of setup.cfg, at the versions of requirements.lock.
COPY setup.cfg pyproject.toml requirements.lock README.md ./
COPY exporter ./exporter
COPY ticketing ./ticketing
# The simulated platform, for `docker-compose --profile demo up`.
COPY demo ./demo
# Installed in place, so the console scripts, gunicorn and `python -m` all use
# /app and the ticket service's instance folder is /app/instance (attachments).
RUN pip install -c requirements.lock -e . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin partnerwatch \
    && mkdir -p /app/instance /var/lib/platform \
    && chown partnerwatch:partnerwatch /app/instance /var/lib/platform

USER partnerwatch
