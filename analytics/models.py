"""Typed SQLAlchemy 2.0 models: the one `events` table every source writes to, and its neighbours.

Times are stored as naive UTC datetimes on both databases.

`events` is keyed by (site_id, occurred_at, id) so that the table can later be partitioned by month
on `occurred_at` and distributed by `site_id` (Citus) without changing any key: both require their
column to be part of every primary and unique key.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

ROLES = ("admin", "viewer")
SOURCES = ("api", "tracker", "benefits", "collector", "track", "import")


def utcnow() -> dt.datetime:
    """Naive UTC now: the form every timestamp column holds."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_event_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout) so that new rows land at the end of indexes."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


DEFAULT_RETENTION_MONTHS = 13  # French guidance for consent-exempt audience measurement


class Site(db.Model):
    """A website that sends events; `public_id` is what its script tag carries."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Origins allowed to send events from a browser ("https://example.org"); empty allows any.
    origins: Mapped[list[str]] = mapped_column(JSONType, default=list)
    share_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Raw events older than this many months are removed by `flask purge` (analytics/retention.py)
    retention_months: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_RETENTION_MONTHS, server_default=str(DEFAULT_RETENTION_MONTHS)
    )


_HAS_DEDUPE_KEY = text("dedupe_key IS NOT NULL")  # the dedupe index's rows


class Event(db.Model):
    """One thing that happened on a site, from any source (tracker, API or a legacy contract)."""

    __tablename__ = "events"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_event_id)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(64))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(1024))
    referrer: Mapped[str | None] = mapped_column(String(1024))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    browser: Mapped[str | None] = mapped_column(String(64))
    os: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(16))
    # ISO 3166-1 alpha-2, from the client address at ingest (the address is never stored).
    country: Mapped[str | None] = mapped_column(String(2))
    item_id: Mapped[str | None] = mapped_column(String(200))
    item_position: Mapped[int | None] = mapped_column(Integer)
    list_size: Mapped[int | None] = mapped_column(Integer)
    schema_version: Mapped[int] = mapped_column(SmallInteger, default=1)
    # Makes retries and re-imports idempotent: a second row with the same key is not stored.
    dedupe_key: Mapped[str | None] = mapped_column(String(64))
    props: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        Index("ix_events_site_name_time", "site_id", "name", "occurred_at"),
        Index("ix_events_site_source_time", "site_id", "source", "occurred_at"),
        Index("ix_events_site_session", "site_id", "session_id"),
        # The refresher's partial recount looks up the events of the visitors it touches.
        Index("ix_events_site_visitor_time", "site_id", "visitor_id", "occurred_at"),
        # Only rows with a key (migration 0015): rows without one never conflict, and as a
        # full index the planner took it for the primary key (a partial one serves no query
        # that does not name the key).
        Index(
            "uq_events_site_time_dedupe",
            "site_id",
            "occurred_at",
            "dedupe_key",
            unique=True,
            postgresql_where=_HAS_DEDUPE_KEY,
            sqlite_where=_HAS_DEDUPE_KEY,
        ),
    )


class RateCount(db.Model):
    """How many times `key` did something (`scope`: a failed login, ingested events) in the
    one-minute window starting at `window_start`. In the database so that every app node sees
    the same counts."""

    __tablename__ = "rate_counts"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_rate_counts_window", "window_start"),)


class EventError(db.Model):
    """A payload that reached an ingest endpoint and was not stored as an event, and why."""

    __tablename__ = "event_errors"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text)
    # The parsed payload when it was JSON, else the raw body (capped); body_size is the full size.
    payload: Mapped[Any | None] = mapped_column(JSONType)
    raw_body: Mapped[str | None] = mapped_column(Text)
    body_size: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_event_errors_endpoint_time", "endpoint", "received_at"),)


class User(db.Model):
    """A person who may read the dashboards (viewer) or also change settings (admin)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Part of the login session's id: bumped when the password or the role changes, which ends
    # every session of the user on every node.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (CheckConstraint("role IN ('admin', 'viewer')", name="role"),)


class AuditEntry(db.Model):
    """Who changed what in Settings (sites, origins, retention, share links, categories, users)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)


class Category(db.Model):
    """A category the legacy collector contract accepts; anything else is rejected."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


GOAL_KINDS = ("page", "event", "benefit")


class Goal(db.Model):
    """Something a visit can do that a site counts as a conversion (analytics/goals.py):
    - page: a page view whose path matches `path` (`*` matches any run of characters);
    - event: an event named `event_name`, whose props equal every pair of `props`;
    - benefit: an event named `event_name` (e.g. `teleservice`) on item `item_id` (any item
      when it is NULL)."""

    __tablename__ = "goals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(String(1024))
    event_name: Mapped[str | None] = mapped_column(String(100))
    props: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    item_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("uq_goals_site_name", "site_id", "name", unique=True),
        CheckConstraint("kind IN ('page', 'event', 'benefit')", name="kind"),
    )


class Funnel(db.Model):
    """Ordered steps (2 to 8) a visit goes through: each a goal's name (`{"goal": NAME}`) or an
    inline page or event (`{"path": "/x"}`, `{"event": "name"}`), counted per visit in order."""

    __tablename__ = "funnels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    steps: Mapped[list[dict[str, str]]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("uq_funnels_site_name", "site_id", "name", unique=True),)


class ApiToken(db.Model):
    """A user's token for the stats API (/api/v1/stats). Only its SHA-256 is stored (the token
    is 32 random bytes, so a fast hash is enough); `prefix` names it in lists. It may do what
    its user's role may, and stops working when revoked or when the user is deleted."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class DailySalt(db.Model):
    """Today's salt for visitor ids; older ones are deleted so ids cannot be linked across days."""

    __tablename__ = "daily_salts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))


# --- Rollups (analytics/rollups): what the dashboards read instead of raw events -------------


class RollupQueue(db.Model):
    """A (site, day) whose events changed since its rollups were last computed.

    Database triggers on `events` append one row per statement and touched day (per row on
    SQLite), in the writer's own transaction, so a committed event is always either rolled up or
    queued. Rows are only ever
    inserted by writers and deleted by the refresher: no writer waits on another.
    """

    __tablename__ = "rollup_queue"

    # On PostgreSQL the key is (site_id, id) (migration 0009: Citus needs site_id in it).
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[dt.date] = mapped_column(Date)
    # Set by the database (UTC): how long a change has waited is the rollups' lag.
    queued_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # For inserts, the [occurred_at, id] of each row added (up to ADDED_LIMIT per statement), so
    # a built day is recounted from what was added; NULL: recount the whole day.
    added: Mapped[list | None] = mapped_column(JSONType)

    __table_args__ = (Index("ix_rollup_queue_site_day", "site_id", "day"),)


class RollupPresence(db.Model):
    """Which visitors ('u') and visits ('v') had events on which day.

    It tells the refresher which ids span several days (`spans`): their events are kept apart,
    in `rollup_span_events`, because counting them per day and adding the days would count them
    twice.
    """

    __tablename__ = "rollup_presence"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(1), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    spans: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_rollup_presence_site_day", "site_id", "day"),)


class RollupSpanEvent(db.Model):
    """A copy of an event of a visitor or visit seen on several days (see RollupPresence).

    The dashboards count these with the raw queries over the range they show, and add the
    per-day rollups of every other event: the two sets share no visitor and no visit.
    """

    __tablename__ = "rollup_span_events"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(64))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(1024))
    referrer: Mapped[str | None] = mapped_column(String(1024))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    browser: Mapped[str | None] = mapped_column(String(64))
    os: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(16))
    # ISO 3166-1 alpha-2, from the client address at ingest (the address is never stored).
    country: Mapped[str | None] = mapped_column(String(2))
    item_id: Mapped[str | None] = mapped_column(String(200))
    item_position: Mapped[int | None] = mapped_column(Integer)
    list_size: Mapped[int | None] = mapped_column(Integer)
    schema_version: Mapped[int] = mapped_column(SmallInteger, default=1)
    # Read only under a `prop.KEY` filter (the metrics read the columns above: read.SPAN_COLUMNS).
    props: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (Index("ix_rollup_span_events_site_day", "site_id", "day"),)


class RollupFact(db.Model):
    """One row of one metric's per-day counts, over the day's events not in rollup_span_events.

    `metric` names a stats query (see analytics/stats/base.py METRICS); `k1..k4` are its group
    keys as text ('' when it has fewer), `n1..n4` its counts and `x` a sum of seconds. A metric
    split by a filter's value (analytics/rollups/slices.py) keeps the value in `k1`.
    """

    __tablename__ = "rollup_facts"

    # A surrogate key: a 1,024-character path can outgrow a b-tree entry, so keys stay unindexed.
    # On PostgreSQL the key is (site_id, id) (migration 0009: Citus needs site_id in it).
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(24))
    day: Mapped[dt.date] = mapped_column(Date)
    k1: Mapped[str] = mapped_column(String(1024), default="")
    k2: Mapped[str] = mapped_column(String(1024), default="")
    k3: Mapped[str] = mapped_column(String(1024), default="")
    k4: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    n1: Mapped[int] = mapped_column(BigInteger, default=0)
    n2: Mapped[int] = mapped_column(BigInteger, default=0)
    n3: Mapped[int] = mapped_column(BigInteger, default=0)
    n4: Mapped[int] = mapped_column(BigInteger, default=0)
    x: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (Index("ix_rollup_facts_site_metric_day", "site_id", "metric", "day"),)


class RollupVisitDay(db.Model):
    """A split day's day-local visits, for the filters split counts cannot answer.

    Two columnar blobs (analytics/rollups/visits.py): `visits`, a row per visit and distinct
    (visitor, browser, os, device, country) among its events, with the values the visit-level
    filters judge the visit by; `pages`, its page views per visitor and path. A read decodes the
    days of its range and counts in memory: a 30-day Overview under any visit-level filter
    reads 30 rows, not the 100,000 visits they hold. `parts`: its events grouped by visit and
    every column an event-level filter or a card reads, for event-level filters; `details`:
    the same split by item and properties too, for an item or property filter. Each column of
    a blob is compressed apart, so a read decompresses only what it counts.
    """

    __tablename__ = "rollup_visit_days"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    visits: Mapped[bytes] = mapped_column(LargeBinary)
    pages: Mapped[bytes] = mapped_column(LargeBinary)
    parts: Mapped[bytes] = mapped_column(LargeBinary)
    details: Mapped[bytes] = mapped_column(LargeBinary)


class RollupLease(db.Model):
    """Who may refresh rollups now: one holder at a time across every process and node."""

    __tablename__ = "rollup_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
