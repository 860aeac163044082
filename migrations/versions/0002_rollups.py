"""Rollups: the per-day tables the dashboards read, the queue that keeps them current.

Reviewed by hand. Triggers on `events` queue every (site, day) a statement touches, in the
writer's own transaction: statement-level with a transition table on PostgreSQL (one queue row
per statement and day, whatever the batch size), row-level on SQLite (which has no statement
triggers; a row is only added when the day is not queued yet). Existing events are queued once
here, so the first refresh builds their rollups.

Revision ID: 0002_rollups
Revises: 0001_initial
Create Date: 2026-12-01 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_rollups"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PG_FUNCTIONS = """
CREATE FUNCTION rollup_queue_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rollup_queue (site_id, day)
  SELECT DISTINCT site_id, occurred_at::date FROM changed_rows;
  RETURN NULL;
END $$;
"""
PG_TRIGGERS = [
    "CREATE TRIGGER events_rollup_insert AFTER INSERT ON events "
    "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION rollup_queue_new_rows()",
    "CREATE TRIGGER events_rollup_delete AFTER DELETE ON events "
    "REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION rollup_queue_new_rows()",
    "CREATE TRIGGER events_rollup_update_old AFTER UPDATE ON events "
    "REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION rollup_queue_new_rows()",
    "CREATE TRIGGER events_rollup_update_new AFTER UPDATE ON events "
    "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION rollup_queue_new_rows()",
]


def _sqlite_trigger(name: str, when: str, row: str) -> str:
    return f"""
CREATE TRIGGER {name} AFTER {when} ON events FOR EACH ROW
WHEN NOT EXISTS (SELECT 1 FROM rollup_queue
                 WHERE site_id = {row}.site_id AND day = date({row}.occurred_at))
BEGIN
  INSERT INTO rollup_queue (site_id, day) VALUES ({row}.site_id, date({row}.occurred_at));
END"""


SQLITE_TRIGGERS = [
    _sqlite_trigger("events_rollup_insert", "INSERT", "NEW"),
    _sqlite_trigger("events_rollup_delete", "DELETE", "OLD"),
    _sqlite_trigger("events_rollup_update_old", "UPDATE", "OLD"),
    _sqlite_trigger("events_rollup_update_new", "UPDATE", "NEW"),
]


def _utc_now():
    """Naive UTC now as a column default (how every timestamp here is stored)."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("(now() AT TIME ZONE 'utc')")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade():
    op.create_table(
        "rollup_queue",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False, server_default=_utc_now()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_queue")),
    )
    op.create_index("ix_rollup_queue_site_day", "rollup_queue", ["site_id", "day"])
    op.create_table(
        "rollup_presence",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("spans", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_rollup_presence_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "kind", "key", "day", name=op.f("pk_rollup_presence")),
    )
    op.create_index("ix_rollup_presence_site_day", "rollup_presence", ["site_id", "day"])
    op.create_table(
        "rollup_span_events",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("visitor_id", sa.String(length=64), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=True),
        sa.Column("referrer", sa.String(length=1024), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("browser", sa.String(length=64), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("item_id", sa.String(length=200), nullable=True),
        sa.Column("item_position", sa.Integer(), nullable=True),
        sa.Column("list_size", sa.Integer(), nullable=True),
        sa.Column("schema_version", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_rollup_span_events_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "occurred_at", "id", name=op.f("pk_rollup_span_events")),
    )
    op.create_index("ix_rollup_span_events_site_day", "rollup_span_events", ["site_id", "day"])
    op.create_table(
        "rollup_facts",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=24), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("k1", sa.String(length=1024), nullable=False),
        sa.Column("k2", sa.String(length=1024), nullable=False),
        sa.Column("k3", sa.String(length=1024), nullable=False),
        sa.Column("n1", sa.BigInteger(), nullable=False),
        sa.Column("n2", sa.BigInteger(), nullable=False),
        sa.Column("n3", sa.BigInteger(), nullable=False),
        sa.Column("n4", sa.BigInteger(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_rollup_facts_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_facts")),
    )
    op.create_index("ix_rollup_facts_site_metric_day", "rollup_facts", ["site_id", "metric", "day"])
    op.create_table(
        "rollup_leases",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_leases")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        for statement in PG_TRIGGERS:
            op.execute(statement)
        op.execute(
            "INSERT INTO rollup_queue (site_id, day) "
            "SELECT DISTINCT site_id, occurred_at::date FROM events"
        )
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        op.execute(
            "INSERT INTO rollup_queue (site_id, day) "
            "SELECT DISTINCT site_id, date(occurred_at) FROM events"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in ("insert", "delete", "update_old", "update_new"):
            op.execute(f"DROP TRIGGER IF EXISTS events_rollup_{name} ON events")
        op.execute("DROP FUNCTION IF EXISTS rollup_queue_new_rows()")
    else:
        for name in ("insert", "delete", "update_old", "update_new"):
            op.execute(f"DROP TRIGGER IF EXISTS events_rollup_{name}")
    op.drop_table("rollup_leases")
    op.drop_index("ix_rollup_facts_site_metric_day", table_name="rollup_facts")
    op.drop_table("rollup_facts")
    op.drop_index("ix_rollup_span_events_site_day", table_name="rollup_span_events")
    op.drop_table("rollup_span_events")
    op.drop_index("ix_rollup_presence_site_day", table_name="rollup_presence")
    op.drop_table("rollup_presence")
    op.drop_index("ix_rollup_queue_site_day", table_name="rollup_queue")
    op.drop_table("rollup_queue")
