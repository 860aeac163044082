"""Events: the visitor's country (ISO 3166-1 alpha-2), resolved from the address at ingest.

Reviewed by hand. A nullable column: existing events have no country (their addresses were never
stored, so none can be derived). `rollup_span_events` is shaped like `events` (it keeps the
events of visits that span days), so it gets the column too.

Revision ID: 0004_event_country
Revises: 0003_rollup_added_rows
Create Date: 2026-12-01 15:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_event_country"
down_revision = "0003_rollup_added_rows"
branch_labels = None
depends_on = None


TABLES = ("events", "rollup_span_events")


def upgrade():
    for table in TABLES:
        op.add_column(table, sa.Column("country", sa.String(length=2), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild of `events` would drop its triggers.
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN country")
