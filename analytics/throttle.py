"""Rate limits that hold across app nodes: counts per one-minute window, in the database.

Two users:
- the login throttle: at most LOGIN_MAX_FAILURES failed logins per account in
  LOGIN_WINDOW_SECONDS, whichever node they reach (a success clears the account's count);
- the per-client ingest limit on `POST /api/events`: at most INGEST_RATE_LIMIT events a minute
  from one client (the day's visitor hash of address and user agent) to one site; off (0) by
  default.

A count is one upsert (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING n`) on a connection of
its own, committed at once: it stands whatever the request does next. Windows older than an
hour are pruned now and then by the writes themselves, and by `flask purge`.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import delete, func, select

from .extensions import db
from .models import RateCount, utcnow
from .stats.dialect import dialect

WINDOW = dt.timedelta(minutes=1)
KEEP = dt.timedelta(hours=1)  # no limit looks further back
PRUNE_ONE_IN = 500  # writes between two prunings, on average


def window_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def add(scope: str, key: str, n: int = 1, now: dt.datetime | None = None) -> int:
    """Count `n` more for `key` in the current minute; return the minute's count after it."""
    if dialect() == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    moment = now or utcnow()
    stmt = insert(RateCount).values(scope=scope, key=key[:200], window_start=window_of(moment), n=n)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "key", "window_start"], set_={"n": RateCount.n + stmt.excluded.n}
    ).returning(RateCount.n)
    with db.engine.begin() as conn:
        count = conn.execute(stmt).scalar_one()
        if random.randrange(PRUNE_ONE_IN) == 0:
            conn.execute(delete(RateCount).where(RateCount.window_start < moment - KEEP))
    return int(count)


def recent(scope: str, key: str, span: dt.timedelta, now: dt.datetime | None = None):
    """(total count, start of the oldest window) of `key` over the windows within `span`."""
    moment = now or utcnow()
    with db.engine.connect() as conn:
        total, oldest = conn.execute(
            select(func.coalesce(func.sum(RateCount.n), 0), func.min(RateCount.window_start)).where(
                RateCount.scope == scope,
                RateCount.key == key[:200],
                RateCount.window_start > window_of(moment - span),
            )
        ).one()
    if isinstance(oldest, str):
        oldest = dt.datetime.fromisoformat(oldest)
    return int(total), oldest


def clear(scope: str, key: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(RateCount).where(RateCount.scope == scope, RateCount.key == key[:200]))


def prune(now: dt.datetime | None = None) -> int:
    with db.engine.begin() as conn:
        return conn.execute(
            delete(RateCount).where(RateCount.window_start < (now or utcnow()) - KEEP)
        ).rowcount


class LoginThrottle:
    """At most `limit` failed logins per account in `window` seconds, across every node."""

    SCOPE = "login"

    def __init__(self, limit: int = 10, window: float = 900.0) -> None:
        self.limit = limit
        self.span = dt.timedelta(seconds=window)

    def wait(self, key: str, now: dt.datetime | None = None) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        moment = now or utcnow()
        failures, oldest = recent(self.SCOPE, key, self.span, moment)
        if failures < self.limit or oldest is None:
            return 0.0
        return max(1.0, (oldest + WINDOW + self.span - moment).total_seconds())

    def failed(self, key: str, now: dt.datetime | None = None) -> None:
        add(self.SCOPE, key, 1, now)

    def succeeded(self, key: str) -> None:
        clear(self.SCOPE, key)


def ingest_allowed(site_id: int, client: str, events: int, limit: int) -> tuple[bool, int, bool]:
    """Count `events` from `client` to the site this minute: (allowed, seconds until the next
    minute, whether this request is the one that went over)."""
    now = utcnow()
    count = add("ingest", f"{site_id}:{client}", events, now)
    retry = 60 - now.second
    return count <= limit, retry, count - events <= limit < count
