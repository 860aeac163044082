"""A fresh PostgreSQL database for a benchmark, and an app migrated onto it."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from analytics import create_app
from analytics.config import normalise_database_url

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def postgres() -> Iterator[str]:
    """BENCH_DATABASE_URL, or the throw-away server (started here if down, and then stopped).

    Sets BENCH_DATABASE_URL for the block, so every benchmark (and child process) uses it.
    """
    if os.environ.get("BENCH_DATABASE_URL"):
        yield os.environ["BENCH_DATABASE_URL"]
        return
    port = int(os.environ.get("PGPORT", "55432"))
    was_up = _listening(port)
    url = subprocess.check_output([str(ROOT / ".ci" / "start-postgres")], text=True).strip()
    os.environ["BENCH_DATABASE_URL"] = url
    try:
        yield url
    finally:
        del os.environ["BENCH_DATABASE_URL"]
        if not was_up:
            subprocess.run([str(ROOT / ".ci" / "stop-postgres")], check=False)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def libpq_url(url: str) -> str:
    """The same URL without SQLAlchemy's driver name, for psycopg and libpq."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)


def _admin_url() -> str:
    admin = (
        os.environ.get("BENCH_DATABASE_URL")
        or subprocess.check_output([str(ROOT / ".ci" / "start-postgres")], text=True).strip()
    )
    return normalise_database_url(admin)


def _run(*statements: str) -> None:
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def database_url(name: str) -> str:
    """The URL of database `name` on BENCH_DATABASE_URL, or on the throw-away server."""
    url = sa.engine.make_url(_admin_url()).set(database=name)
    return url.render_as_string(hide_password=False)


def database_exists(name: str) -> bool:
    engine = sa.create_engine(_admin_url())
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
    engine.dispose()
    return found is not None


def fresh_database(name: str) -> str:
    """(Re)create database `name` on BENCH_DATABASE_URL, or on the throw-away server."""
    _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_app(url: str) -> Flask:
    """An app on `url` with the schema upgraded (CSRF off: benchmarks post forms directly)."""
    app = create_app(
        {"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False}
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    return app
