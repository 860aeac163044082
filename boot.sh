#!/bin/sh
# Container entry point: upgrade the schema (retrying while the database starts), make the
# coming months' partitions of events (PostgreSQL), then serve.
set -e
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    flask --app wsgi db upgrade && break
    echo "database not ready (attempt $attempt), retrying in 3 s..." >&2
    sleep 3
done
flask --app wsgi partitions ensure
exec gunicorn --workers "${WEB_CONCURRENCY:-2}" --threads "${GUNICORN_THREADS:-16}" --bind 0.0.0.0:5000 \
    --access-logfile - wsgi:app
