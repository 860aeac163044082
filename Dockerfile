# Slim image, non-root user; migrates the database, then hands PID 1 to gunicorn.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEMO=0 \
    WEB_CONCURRENCY=2

WORKDIR /app
# Dependencies from the lock only, each checked against its hash; then the app, without any.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY analytics ./analytics
RUN pip install --no-deps --no-build-isolation .
COPY wsgi.py boot.sh gunicorn.conf.py ./
COPY migrations ./migrations

RUN useradd --create-home --uid 10001 analytics \
    && mkdir -p /app/instance && chown analytics /app/instance
USER analytics

EXPOSE 5000
# /healthz answers 200 when the database answers (urllib: the slim image has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as r; sys.exit(r.urlopen('http://127.0.0.1:5000/healthz', timeout=4).status != 200)"]
CMD ["./boot.sh"]
