"""Accounts: a session epoch per user (bumped when the password or the role changes, so every
session of that user ends), and the Settings audit log.

Reviewed by hand.

Revision ID: 0007_accounts_and_audit
Revises: 0006_rate_counts
Create Date: 2026-12-01 20:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0007_accounts_and_audit"
down_revision = "0006_rate_counts"
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.add_column(
        "users", sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade():
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.execute("ALTER TABLE users DROP COLUMN session_epoch")
