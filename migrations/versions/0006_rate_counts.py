"""Rate counts in the database: the login throttle and the per-client ingest limit hold across
app nodes (they were in each process's memory).

Reviewed by hand. One row per (scope, key, one-minute window); old windows are pruned.

Revision ID: 0006_rate_counts
Revises: 0005_site_retention
Create Date: 2026-12-01 20:25:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_rate_counts"
down_revision = "0005_site_retention"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rate_counts",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "window_start"),
    )
    op.create_index("ix_rate_counts_window", "rate_counts", ["window_start"])


def downgrade():
    op.drop_index("ix_rate_counts_window", table_name="rate_counts")
    op.drop_table("rate_counts")
