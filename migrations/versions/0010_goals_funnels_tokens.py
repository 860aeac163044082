"""Goals and funnels per site, and API tokens per user (the stats API).

Reviewed by hand.

Revision ID: 0010_goals_funnels_tokens
Revises: 0009_site_in_rollup_keys
Create Date: 2026-12-01 23:20:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_goals_funnels_tokens"
down_revision = "0009_site_in_rollup_keys"
branch_labels = None
depends_on = None


def _json():
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _site_fk(table):
    return sa.ForeignKeyConstraint(
        ["site_id"], ["sites.id"], name=f"fk_{table}_site_id_sites", ondelete="CASCADE"
    )


def upgrade():
    op.create_table(
        "goals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=True),
        sa.Column("event_name", sa.String(length=100), nullable=True),
        sa.Column("props", _json(), nullable=True),
        sa.Column("item_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('page', 'event', 'benefit')", name="ck_goals_kind"),
        _site_fk("goals"),
        sa.PrimaryKeyConstraint("id", name="pk_goals"),
    )
    op.create_index("uq_goals_site_name", "goals", ["site_id", "name"], unique=True)
    op.create_table(
        "funnels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("steps", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _site_fk("funnels"),
        sa.PrimaryKeyConstraint("id", name="pk_funnels"),
    )
    op.create_index("uq_funnels_site_name", "funnels", ["site_id", "name"], unique=True)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def downgrade():
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index("uq_funnels_site_name", table_name="funnels")
    op.drop_table("funnels")
    op.drop_index("uq_goals_site_name", table_name="goals")
    op.drop_table("goals")
