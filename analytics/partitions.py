"""Monthly partitions of `events` on PostgreSQL (migration 0008), kept by `flask partitions ensure`.

- `ensure` makes the partitions of this month and the coming `MONTHS_AHEAD`, and gives every
  month found in the default partition (events dated where no partition was) one of its own,
  moving its rows there. It is idempotent, runs at start-up (`make run`, the container), before
  `purge`, and from the rollup refresher once an hour, so a server that runs for months never
  writes into the default partition in the normal course.
- `droppable(before)` names the partitions that lie wholly before a day: retention drops them
  whole (analytics/retention.py) instead of deleting their rows one day at a time.

A new partition is made as a plain table and then attached, so that writes to other months go on
meanwhile: ATTACH takes a lock that conflicts only with other schema changes, where CREATE TABLE
... PARTITION OF would block every reader and writer of `events`. Moving rows out of the default
partition addresses the partitions directly, which does not fire the rollup triggers on `events`:
the rows only change table, and the rollups already count them.

On SQLite `events` stays a plain table: every function here reports that and does nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field

from sqlalchemy import text

from .extensions import db
from .models import utcnow
from .stats.dialect import dialect

MONTHS_AHEAD = 3
DEFAULT = "events_default"
ENSURE_EVERY = 3600.0  # seconds between two `ensure` runs of the refresher
LOCK_TIMEOUT = "10s"  # how long a partition change waits for a lock before it gives up
WRITERS_WAIT = "2s"  # how long making a partition may keep writers of `events` waiting
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
_last_ensured: float | None = None
PARTITION_NAME = re.compile(r"events_(p\d{4}_\d{2}|default)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: dt.date  # first day in it
    end: dt.date  # first day after it


@dataclass
class Ensured:
    partitioned: bool
    created: list[str] = field(default_factory=list)
    drained: dict[str, int] = field(default_factory=dict)  # partition: rows moved out of default


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_after(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def name_of(month: dt.date) -> str:
    return f"events_p{month:%Y_%m}"


def outside_partitions(
    obj: object, name: str | None, type_: str, reflected: bool, _: object
) -> bool:
    """Alembic's `include_object`: the partitions (tables `ensure` makes, not the models) are
    not part of the schema the migrations compare."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not (reflected and PARTITION_NAME.fullmatch(table or ""))


def is_partitioned() -> bool:
    if dialect() != "postgresql":
        return False
    return bool(
        db.session.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                "WHERE partrelid = to_regclass('events'))"
            )
        ).scalar()
    )


def partitions() -> list[Partition]:
    """The ranged partitions of `events`, oldest first (the default partition is not listed)."""
    rows = db.session.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
        )
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUNDS.search(bound or "")
        if match:
            start, end = (dt.date.fromisoformat(v[:10]) for v in match.groups())
            found.append(Partition(name, start, end))
    return sorted(found, key=lambda p: p.start)


def months_in_default() -> list[dt.date]:
    return sorted(
        db.session.execute(
            text(f"SELECT DISTINCT date_trunc('month', occurred_at)::date FROM {DEFAULT}")
        ).scalars()
    )


def add_month(month: dt.date) -> int | None:
    """Make the partition of `month`, moving its rows out of the default partition; commit.

    Returns how many rows moved, or None when another process made it meanwhile."""
    name, start, end = name_of(month), month, month_after(month)
    db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    # Every app process runs `ensure` (the refresher): one at a time, the others find it done.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('events partitions'))"))
    if db.session.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        db.session.commit()
        return None
    # Writers wait until the partition is in place (readers do not). Locking the default
    # partition alone was not enough: a writer that had already chosen it for a row of this
    # month waited there, and once the partition was attached its row broke the default's new
    # bound and the whole INSERT failed (a 503 to every request of an ingest group, seen under
    # the ingest bench). Waiting on `events` itself, a writer chooses after the commit.
    # While this waits for a long write to end, new writers queue behind it: give up soon (the
    # refresher tries again in an hour) rather than hold ingest for long.
    db.session.execute(text(f"SET LOCAL lock_timeout = '{WRITERS_WAIT}'"))
    db.session.execute(text("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"))
    db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    db.session.execute(text(f"LOCK TABLE {DEFAULT} IN SHARE ROW EXCLUSIVE MODE"))
    db.session.execute(
        text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    moved = db.session.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE occurred_at >= :start "
            f"AND occurred_at < :end RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"start": start, "end": end},
    ).rowcount
    db.session.execute(
        text(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')")
    )
    db.session.commit()
    return moved


def ensure(today: dt.date | None = None, ahead: int = MONTHS_AHEAD) -> Ensured:
    """Partitions for this month and the `ahead` coming ones, and for every month in the
    default partition (its rows moved there). Idempotent."""
    if not is_partitioned():
        return Ensured(partitioned=False)
    report = Ensured(partitioned=True)
    month = month_start(today or utcnow().date())
    wanted = set()
    for _ in range(ahead + 1):
        wanted.add(month)
        month = month_after(month)
    wanted.update(months_in_default())
    have = {p.start for p in partitions()}
    db.session.rollback()  # each month in a transaction of its own
    for month in sorted(wanted - have):
        moved = add_month(month)
        if moved is None:
            continue
        report.created.append(name_of(month))
        if moved:
            report.drained[name_of(month)] = moved
    return report


def cover(first: dt.date, last: dt.date) -> list[str]:
    """Partitions for every month from `first` to `last` (a bulk load of past events makes them
    first, so that its rows go straight to their months); return those made."""
    if not is_partitioned():
        return []
    have = {p.start for p in partitions()}
    db.session.rollback()
    made = []
    month = month_start(first)
    while month <= last:
        if month not in have and add_month(month) is not None:
            made.append(name_of(month))
        month = month_after(month)
    return made


def ensure_now_and_then(every: float = ENSURE_EVERY) -> None:
    """`ensure`, if this process has not run it in the last `every` seconds (the refresher
    calls this each round)."""
    global _last_ensured
    now = time.monotonic()
    if _last_ensured is not None and now - _last_ensured < every:
        return
    _last_ensured = now
    ensure()


def droppable(before: dt.date) -> list[Partition]:
    """Partitions whose every day lies before `before`."""
    if not is_partitioned():
        return []
    return [p for p in partitions() if p.end <= before]


def drop(partition: Partition) -> None:
    """Drop one partition whole (its rows with it); commit. The rollup triggers do not fire:
    the caller has already brought the rollups of its days to what they keep without them."""
    db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    db.session.execute(text(f"ALTER TABLE events DETACH PARTITION {partition.name}"))
    db.session.execute(text(f"DROP TABLE {partition.name}"))
    db.session.commit()
