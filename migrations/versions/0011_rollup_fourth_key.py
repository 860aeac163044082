"""Rollups: a fourth group key, so counts split by a filter's value keep all three UTM keys.

Reviewed by hand. A filtered Overview reads day counts split by the filter's value
(analytics/rollups/slices.py); the value takes the first key, the metric's own keys the next
three. A column with a constant default is added without rewriting the table on PostgreSQL.

Revision ID: 0011_rollup_fourth_key
Revises: 0010_goals_funnels_tokens
Create Date: 2026-12-02 05:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0011_rollup_fourth_key"
down_revision = "0010_goals_funnels_tokens"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "rollup_facts",
        sa.Column("k4", sa.String(1024), nullable=False, server_default=""),
    )


def downgrade():
    # Split counts are the only rows that use k4; without them a filtered view reads raw.
    op.execute("DELETE FROM rollup_facts WHERE metric LIKE '%@%' OR metric = 'sliced'")
    op.execute("ALTER TABLE rollup_facts DROP COLUMN k4")
