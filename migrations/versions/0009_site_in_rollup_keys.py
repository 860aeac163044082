"""PostgreSQL: the primary keys of `rollup_facts` and `rollup_queue` lead with `site_id`.

Reviewed by hand. Citus distributes a table by a column that every primary and unique key must
include; `events` and the other rollup tables were keyed so from the start, these two had a
surrogate `id` alone. The ids stay unique (a sequence gives them). SQLite keeps `id` alone: it
only numbers a column declared exactly INTEGER PRIMARY KEY.

Revision ID: 0009_site_in_rollup_keys
Revises: 0008_partitioned_events
Create Date: 2026-12-01 23:40:00
"""
from alembic import op

revision = "0009_site_in_rollup_keys"
down_revision = "0008_partitioned_events"
branch_labels = None
depends_on = None

TABLES = ("rollup_facts", "rollup_queue")


def _key(columns: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({columns})"
        )


def upgrade():
    _key("site_id, id")


def downgrade():
    _key("id")
