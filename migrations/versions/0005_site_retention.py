"""Sites: how many months of raw events to keep (retention, enforced by `flask purge`).

Reviewed by hand. 13 months by default, as French guidance for consent-exempt audience measurement
suggests; existing sites get it too.

Revision ID: 0005_site_retention
Revises: 0004_event_country
Create Date: 2026-12-01 20:10:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_site_retention"
down_revision = "0004_event_country"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "sites",
        sa.Column("retention_months", sa.Integer(), nullable=False, server_default="13"),
    )


def downgrade():
    op.execute("ALTER TABLE sites DROP COLUMN retention_months")
