"""Rollups: stored visits gain their event parts split by item and properties (`details`),
every blob compresses each column apart, and span events keep their properties.

Reviewed by hand. The old rows are in the format before this one (one compressed buffer per
blob, no details), so the table is made again, empty, and the `sliced` markers are removed: the
refresher splits every ended day again (newest first, a few seconds a round) and writes its
visits in the new format. Until a day is split again, a filtered view reads it raw: slower,
never wrong. Span events are filled with their events' properties: a property filter reads
them with the rest of a range.

Revision ID: 0013_visit_details
Revises: 0012_rollup_visits
Create Date: 2026-12-02 12:40:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0013_visit_details"
down_revision = "0012_rollup_visits"
branch_labels = None
depends_on = None

BLOBS = ("visits", "pages", "parts")


def _create(blobs):
    op.create_table(
        "rollup_visit_days",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in blobs),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_rollup_visit_days_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "day", name=op.f("pk_rollup_visit_days")),
    )


def upgrade():
    op.drop_table("rollup_visit_days")
    _create((*BLOBS, "details"))
    op.execute("DELETE FROM rollup_facts WHERE metric = 'sliced'")
    op.add_column(
        "rollup_span_events",
        sa.Column("props", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    op.execute(
        "UPDATE rollup_span_events SET props = (SELECT e.props FROM events e"
        " WHERE e.site_id = rollup_span_events.site_id"
        " AND e.occurred_at = rollup_span_events.occurred_at AND e.id = rollup_span_events.id)"
    )


def downgrade():
    with op.batch_alter_table("rollup_span_events") as batch:
        batch.drop_column("props")
    op.drop_table("rollup_visit_days")
    _create(BLOBS)
    op.execute("DELETE FROM rollup_facts WHERE metric = 'sliced'")
