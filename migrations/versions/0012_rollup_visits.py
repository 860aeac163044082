"""Rollups: the visits of split days, so filters that split counts cannot answer (several
values, a negation, several visit-level dimensions) read stored days too.

Reviewed by hand. A row per site and split day, its visits and page views as columnar blobs
(analytics/rollups/visits.py), written with the day's split counts under its `sliced` marker.
The markers are removed here, so the refresher splits every ended day again (newest first, a
few seconds a round) and writes its visits with it. Until a day is split again, a filtered view
reads it raw: slower, never wrong.

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


def upgrade():
    op.create_table(
        "rollup_visit_days",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("visits", sa.LargeBinary(), nullable=False),
        sa.Column("pages", sa.LargeBinary(), nullable=False),
        sa.Column("parts", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_rollup_visit_days_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "day", name=op.f("pk_rollup_visit_days")),
    )
    op.execute("DELETE FROM rollup_facts WHERE metric = 'sliced'")


def downgrade():
    op.drop_table("rollup_visit_days")
