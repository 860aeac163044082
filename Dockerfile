# Slim image, non-root user; migrates the database, then hands PID 1 to gunicorn.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEMO=0 \
    WEB_CONCURRENCY=2

WORKDIR /app
COPY pyproject.toml README.md ./
COPY analytics ./analytics
RUN pip install .
COPY wsgi.py boot.sh ./
COPY migrations ./migrations

RUN useradd --create-home --uid 10001 analytics \
    && mkdir -p /app/instance && chown analytics /app/instance
USER analytics

EXPOSE 5000
CMD ["./boot.sh"]
