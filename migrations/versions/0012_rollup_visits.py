"""Rollups: per-visit rows of split days, so filters that split counts cannot answer (several
values, a negation, several visit-level dimensions) read stored days too.

Reviewed by hand. The rows are written with a day's split counts (analytics/rollups/slices.py),
under its `sliced` marker; the markers are removed here, so the refresher splits every ended day
again (newest first, a few seconds a round) and writes its visits with it. Until a day is split
again, a filtered view reads it raw: slower, never wrong.

Revision ID: 0012_rollup_visits
Revises: 0011_rollup_fourth_key
Create Date: 2026-12-02 08:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0012_rollup_visits"
down_revision = "0011_rollup_fourth_key"
branch_labels = None
depends_on = None


def _keys() -> list:
    return [
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("visit", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.String(length=64), nullable=True),
    ]


def _constraints(table: str) -> list:
    return [
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f(f"fk_{table}_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("site_id", "day", "visit", "part", name=op.f(f"pk_{table}")),
    ]


def upgrade():
    op.create_table(
        "rollup_visits",
        *_keys(),
        sa.Column("browser", sa.String(length=64), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("entry", sa.String(length=1024), nullable=True),
        sa.Column("referrer", sa.String(length=1024), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("first_browser", sa.String(length=64), nullable=True),
        sa.Column("first_os", sa.String(length=64), nullable=True),
        sa.Column("first_device", sa.String(length=16), nullable=True),
        sa.Column("first_country", sa.String(length=2), nullable=True),
        sa.Column("entry_visitor", sa.String(length=64), nullable=True),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        *_constraints("rollup_visits"),
    )
    op.create_table(
        "rollup_visit_pages",
        *_keys(),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        *_constraints("rollup_visit_pages"),
    )
    op.execute("DELETE FROM rollup_facts WHERE metric = 'sliced'")


def downgrade():
    op.drop_table("rollup_visit_pages")
    op.drop_table("rollup_visits")
