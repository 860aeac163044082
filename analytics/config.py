"""Configuration: defaults, then the environment, then a test mapping.

Every setting read from the environment is listed in the README's configuration table.
"""

from __future__ import annotations

import os
from typing import Any


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def normalise_database_url(url: str) -> str:
    """Accept the `postgres://` spelling Heroku-style hosts hand out, and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def pool_size(env: Any) -> int:
    """Connections each process keeps open: one per request thread (GUNICORN_THREADS, which
    gunicorn.conf.py sets from the worker's real thread count) and two for the refresher's
    supervisor and a spare. The group writer keeps one more, of its own, outside the pool. A
    smaller pool than the threads closed a connection after every request past it and opened a
    new one (a server process each) for the next."""
    if env.get("DATABASE_POOL_SIZE"):
        return int(env["DATABASE_POOL_SIZE"])
    return max(5, int(env.get("GUNICORN_THREADS") or 4) + 2)


def from_environment(instance_path: str) -> dict[str, Any]:
    """Read the environment into a config mapping, with the documented defaults."""
    env = os.environ
    default_db = "sqlite:///" + os.path.join(instance_path, "analytics.sqlite3")
    url = normalise_database_url(env.get("DATABASE_URL") or default_db)
    engine_options: dict[str, Any] = dict(DEFAULTS["SQLALCHEMY_ENGINE_OPTIONS"])
    if url.startswith("postgresql"):
        engine_options["pool_size"] = pool_size(env)
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        # A read replica for dashboards, the explorer and exports (replica.py); unset: none.
        "DATABASE_REPLICA_URL": normalise_database_url(env.get("DATABASE_REPLICA_URL") or ""),
        "SECRET_KEY": env.get("SECRET_KEY"),
        # Ingest limits: a body larger than this is refused before it is parsed.
        "MAX_BODY_BYTES": int(env.get("MAX_BODY_BYTES", 512 * 1024)),
        "MAX_BATCH_EVENTS": int(env.get("MAX_BATCH_EVENTS", 500)),
        # Events carrying their own time: how old (days) and how far ahead (seconds) we accept.
        "MAX_EVENT_AGE_DAYS": float(env.get("MAX_EVENT_AGE_DAYS", 7)),
        # `flask purge` removes rejected payloads older than this
        "EVENT_ERRORS_RETENTION_DAYS": float(env.get("EVENT_ERRORS_RETENTION_DAYS", 30)),
        "MAX_EVENT_FUTURE_SECONDS": float(env.get("MAX_EVENT_FUTURE_SECONDS", 300)),
        # PostgreSQL: small requests arriving while a write is in flight share the next
        # statement and commit. On by default since a comparison the lag sampler did not
        # confound: single events 1.17x faster with it, p99 19 against 26 ms, the database's
        # CPU per event 188 against 332 us (README, Benchmarks). 0 turns it off (Citus).
        "INGEST_GROUP_COMMIT": _bool(env.get("INGEST_GROUP_COMMIT"), default=True),
        # Legacy contracts (see README "Compatible endpoints").
        "CORS_DOMAIN": env.get("CORS_DOMAIN", ""),
        "COLLECTOR_ALLOWED_HOSTS": _list(env.get("COLLECTOR_ALLOWED_HOSTS", "*")),
        "LEGACY_SITE": env.get("LEGACY_SITE", ""),
        # Demo pages under /demo/ (on in `make run`, off in the Docker image).
        "DEMO": _bool(env.get("DEMO")),
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE")),
        # Failed logins allowed per account in a window, before the login answers 429.
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", 10)),
        # events a minute from one client to one site on POST /api/events; 0: no limit
        "INGEST_RATE_LIMIT": int(env.get("INGEST_RATE_LIMIT", 0)),
        "LOGIN_WINDOW_SECONDS": float(env.get("LOGIN_WINDOW_SECONDS", 900)),
        # Dashboards read per-day rollups, refreshed every ROLLUP_INTERVAL seconds by each app
        # process (0: never; run `flask rollups refresh` yourself), in a child process, lowered
        # by ROLLUP_NICE (ROLLUP_PROCESS=0: in a thread of the app process instead).
        "ROLLUPS": _bool(env.get("ROLLUPS"), default=True),
        "ROLLUP_INTERVAL": float(env.get("ROLLUP_INTERVAL", 10)),
        "ROLLUP_PROCESS": _bool(env.get("ROLLUP_PROCESS"), default=True),
        "ROLLUP_NICE": int(env.get("ROLLUP_NICE", 0)),
        # Megabytes of stored visits each app process keeps decoded between requests (the
        # days of a filtered view; PostgreSQL only); 0: none.
        "ROLLUP_CACHE_MB": float(env.get("ROLLUP_CACHE_MB", 256)),
        # Reverse proxies in front: the client address is read from X-Forwarded-For (then hashed).
        "PROXY_COUNT": int(env.get("PROXY_COUNT", 0)),
        # The visitor's country from the address at ingest (bundled data; see ingest/country.py).
        "COUNTRY_LOOKUP": _bool(env.get("COUNTRY_LOOKUP"), default=True),
        "COUNTRY_DATABASE": env.get("COUNTRY_DATABASE") or None,
        # How often the live view (/live) fetches fresh numbers while its tab is visible.
        "LIVE_REFRESH_SECONDS": float(env.get("LIVE_REFRESH_SECONDS", 10)),
    }


DEFAULTS: dict[str, Any] = {
    # No pre-ping: it costs a round trip per request; the write path retries on a dead connection.
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 3600},
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "JSON_SORT_KEYS": False,
}
