"""An optional read replica (`DATABASE_REPLICA_URL`): dashboard, live, explorer and export
requests read from it; everything else, and every write, goes to the primary.

Why by blueprint: those pages only read, and they are the costly reads that a replica exists to
take off the primary. Login, settings, ingest, health, CLI commands and the rollup refresher
(no request at all) stay on the primary, so a user's own change is visible at once and nothing
ever tries to write to a server that refuses writes. Within a replica request an ORM flush or an
INSERT/UPDATE/DELETE statement still goes to the primary.

The replica shows what it has replayed: dashboards lag the primary by the replication delay.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, has_request_context, request
from flask_sqlalchemy.session import Session
from sqlalchemy import Engine, UpdateBase

from .config import normalise_database_url

BIND = "replica"  # its key in SQLALCHEMY_BINDS
_BLUEPRINTS = "analytics.replica_blueprints"


def init_app(app: Flask) -> None:
    """Add the replica, when one is set, as a bind: call before `db.init_app`."""
    url = normalise_database_url(app.config.get("DATABASE_REPLICA_URL") or "")
    if url:
        app.config["SQLALCHEMY_BINDS"] = {**app.config.get("SQLALCHEMY_BINDS", {}), BIND: url}


def readers(app: Flask, *blueprints: Blueprint) -> None:
    """Serve these blueprints' requests from the replica (when one is set): read-only views."""
    if BIND in app.config.get("SQLALCHEMY_BINDS", {}):
        app.extensions[_BLUEPRINTS] = frozenset(b.name for b in blueprints)


def in_use() -> bool:
    """Whether this request reads from the replica (a replica is set, and the view is a reader)."""
    if not has_request_context():
        return False
    return request.blueprint in current_app.extensions.get(_BLUEPRINTS, ())


def read_engine() -> Engine:
    """The engine this request's reads go to, for code that takes connections of its own."""
    from .extensions import db

    return db.engines[BIND] if in_use() else db.engine


class RoutingSession(Session):
    """`db.session`: a reader request's statements go to the replica, writes to the primary."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kw: Any) -> Any:
        if bind is None and not self._flushing and not isinstance(clause, UpdateBase) and in_use():
            return self._db.engines[BIND]
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kw)
