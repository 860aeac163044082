"""Rollups: the queue records which rows an insert added, so a busy day is recounted in part.

Reviewed by hand. `rollup_queue.added` holds the [occurred_at, id] of each row an INSERT added
(NULL for deletes, updates, and statements of more than 5,000 rows: those recount the whole day).
The insert triggers are replaced to fill it: still one queue row per statement and day on
PostgreSQL; on SQLite one per inserted row (row-level triggers cannot aggregate).

Revision ID: 0003_rollup_added_rows
Revises: 0002_rollups
Create Date: 2026-12-01 12:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_rollup_added_rows"
down_revision = "0002_rollups"
branch_labels = None
depends_on = None

ADDED_LIMIT = 5000  # analytics.rollups.delta.ADDED_LIMIT: rows per statement listed in `added`

PG_INSERTED = f"""
CREATE FUNCTION rollup_queue_added_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  listed boolean;
BEGIN
  SELECT count(*) <= {ADDED_LIMIT} INTO listed FROM changed_rows;
  INSERT INTO rollup_queue (site_id, day, added)
  SELECT site_id, occurred_at::date,
         CASE WHEN listed THEN jsonb_agg(jsonb_build_array(occurred_at, id)) END
  FROM changed_rows GROUP BY site_id, occurred_at::date;
  RETURN NULL;
END $$;
"""
PG_INSERT_TRIGGER = (
    "CREATE TRIGGER events_rollup_insert AFTER INSERT ON events "
    "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION {function}()"
)

SQLITE_INSERTED = """
CREATE TRIGGER events_rollup_insert AFTER INSERT ON events FOR EACH ROW
BEGIN
  INSERT INTO rollup_queue (site_id, day, added)
  VALUES (NEW.site_id, date(NEW.occurred_at), json_array(json_array(NEW.occurred_at, NEW.id)));
END"""
SQLITE_QUEUED_ONCE = """
CREATE TRIGGER events_rollup_insert AFTER INSERT ON events FOR EACH ROW
WHEN NOT EXISTS (SELECT 1 FROM rollup_queue
                 WHERE site_id = NEW.site_id AND day = date(NEW.occurred_at))
BEGIN
  INSERT INTO rollup_queue (site_id, day) VALUES (NEW.site_id, date(NEW.occurred_at));
END"""


def _json():
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade():
    op.add_column("rollup_queue", sa.Column("added", _json(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_rollup_insert ON events")
        op.execute(PG_INSERTED)
        op.execute(PG_INSERT_TRIGGER.format(function="rollup_queue_added_rows"))
    else:
        op.execute("DROP TRIGGER events_rollup_insert")
        op.execute(SQLITE_INSERTED)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_rollup_insert ON events")
        op.execute("DROP FUNCTION rollup_queue_added_rows()")
        op.execute(PG_INSERT_TRIGGER.format(function="rollup_queue_new_rows"))
    else:
        op.execute("DROP TRIGGER events_rollup_insert")
        op.execute(SQLITE_QUEUED_ONCE)
    with op.batch_alter_table("rollup_queue") as batch:
        batch.drop_column("added")
