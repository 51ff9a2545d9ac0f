"""platform API keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS access")
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("rate_per_second", sa.Double(), nullable=True),
        sa.Column("burst", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "rate_per_second IS NULL OR rate_per_second > 0", name=op.f("ck_api_keys_rate_positive")
        ),
        sa.CheckConstraint("burst IS NULL OR burst >= 1", name=op.f("ck_api_keys_burst_positive")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        schema="access",
    )
    op.create_index("ix_api_keys_platform", "api_keys", ["platform"], unique=False, schema="access")


def downgrade() -> None:
    op.drop_index("ix_api_keys_platform", table_name="api_keys", schema="access")
    op.drop_table("api_keys", schema="access")
    # Not CASCADE: should anything else come to live in the schema, the downgrade stops rather than drop it.
    op.execute("DROP SCHEMA IF EXISTS access")
