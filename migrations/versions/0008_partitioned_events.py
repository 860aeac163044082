"""PostgreSQL: `events` becomes a table partitioned by month on `occurred_at`.

Reviewed by hand. The plain table is renamed, a partitioned `events` is created with the same
columns, keys, foreign key and rollup triggers, and every row is copied across in one statement
before the old table is dropped: all in the migration's one transaction, so a failure leaves the
plain table as it was. Partitions are made for every month that holds events, for this month and
the coming 3 (what `flask partitions ensure` keeps), and a default partition catches any other
month until `ensure` gives it one (analytics/partitions.py).

The copy does not fire the rollup triggers (they are created after it): the rollups already
count these rows. It takes about as long as writing the table once, and holds an exclusive lock
on `events` meanwhile: ingest waits (and the tracker retries) until it commits.

SQLite keeps the plain table.

Revision ID: 0008_partitioned_events
Revises: 0007_accounts_and_audit
Create Date: 2026-12-01 23:00:00
"""
import datetime as dt

from alembic import op
import sqlalchemy as sa

revision = "0008_partitioned_events"
down_revision = "0007_accounts_and_audit"
branch_labels = None
depends_on = None

MONTHS_AHEAD = 3  # analytics.partitions.MONTHS_AHEAD

INDEXES = {
    "ix_events_site_name_time": "(site_id, name, occurred_at)",
    "ix_events_site_source_time": "(site_id, source, occurred_at)",
    "ix_events_site_session": "(site_id, session_id)",
}
UNIQUE = ("uq_events_site_time_dedupe", "(site_id, occurred_at, dedupe_key)")

# The triggers of migrations 0002 and 0003, unchanged.
TRIGGERS = {
    "events_rollup_insert": ("INSERT", "NEW", "rollup_queue_added_rows"),
    "events_rollup_delete": ("DELETE", "OLD", "rollup_queue_new_rows"),
    "events_rollup_update_old": ("UPDATE", "OLD", "rollup_queue_new_rows"),
    "events_rollup_update_new": ("UPDATE", "NEW", "rollup_queue_new_rows"),
}


def _month_after(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _set_aside(renamed: str) -> None:
    """Rename `events` out of the way, without the keys, indexes and triggers it passes on."""
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON events")
    for name in (*INDEXES, UNIQUE[0]):
        op.execute(f"DROP INDEX {name}")
    op.execute("ALTER TABLE events DROP CONSTRAINT fk_events_site_id_sites")
    op.execute(f"ALTER TABLE events RENAME CONSTRAINT pk_events TO pk_{renamed}")
    op.execute(f"ALTER TABLE events RENAME TO {renamed}")


def _add_keys_and_triggers() -> None:
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (site_id, occurred_at, id)")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT fk_events_site_id_sites FOREIGN KEY (site_id) "
        "REFERENCES sites (id) ON DELETE CASCADE"
    )
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON events {columns}")
    op.execute(f"CREATE UNIQUE INDEX {UNIQUE[0]} ON events {UNIQUE[1]}")
    for name, (when, rows, function) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {when} ON events REFERENCING {rows} TABLE AS "
            f"changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def _columns(bind) -> str:
    names = bind.execute(
        sa.text(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'events'::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    ).scalars()
    return ", ".join(f'"{name}"' for name in names)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    columns = _columns(bind)
    _set_aside("events_unpartitioned")
    op.execute(
        "CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        "PARTITION BY RANGE (occurred_at)"
    )
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    months = set(
        bind.execute(
            sa.text("SELECT DISTINCT date_trunc('month', occurred_at)::date FROM events_unpartitioned")
        ).scalars()
    )
    month = dt.datetime.now(dt.UTC).date().replace(day=1)
    for _ in range(MONTHS_AHEAD + 1):
        months.add(month)
        month = _month_after(month)
    for month in sorted(months):
        op.execute(
            f"CREATE TABLE events_p{month:%Y_%m} PARTITION OF events "
            f"FOR VALUES FROM ('{month}') TO ('{_month_after(month)}')"
        )
    op.execute(f"INSERT INTO events ({columns}) SELECT {columns} FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")
    _add_keys_and_triggers()
    op.execute("ANALYZE events")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    columns = _columns(bind)
    _set_aside("events_partitioned")
    op.execute(
        "CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    op.execute(f"INSERT INTO events ({columns}) SELECT {columns} FROM events_partitioned")
    op.execute("DROP TABLE events_partitioned")  # and its partitions
    _add_keys_and_triggers()
    op.execute("ANALYZE events")
